package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// socketTimeout bounds every netlink round trip, so that a kernel that never
// answers fails a sync instead of wedging it.
const socketTimeout = 10 * time.Second

// netlinkRoutes is Routes over a netlink socket bound to one network
// namespace (the one current when the socket was opened).
type netlinkRoutes struct {
	// h holds the netlink socket.
	h *netlink.Handle
}

// NewRoutes returns Routes for the network namespace of the calling thread
// (for berth, the host's). Its netlink socket stays bound to that namespace
// whichever thread later uses it.
func NewRoutes() (Routes, error) {
	h, err := OpenHandle()
	if err != nil {
		return nil, err
	}
	return newRoutes(h), nil
}

// OpenHandle opens a netlink route socket in the network namespace of the
// calling thread, every round trip bounded by a timeout.
func OpenHandle() (*netlink.Handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening netlink route socket: %w", err)
	}
	if err := h.SetSocketTimeout(socketTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("setting netlink socket timeout: %w", err)
	}
	return h, nil
}

func newRoutes(h *netlink.Handle) *netlinkRoutes {
	return &netlinkRoutes{h: h}
}

// List implements Routes.
func (n *netlinkRoutes) List() ([]Route, error) {
	filter := &netlink.Route{Protocol: Protocol, Table: unix.RT_TABLE_MAIN}
	nrs, err := n.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		// ErrDumpInterrupted included: a partial list must not drive deletes.
		return nil, fmt.Errorf("listing routes of protocol %d: %w", Protocol, err)
	}
	routes := make([]Route, 0, len(nrs))
	for i := range nrs {
		r, ok := fromNetlink(&nrs[i])
		if !ok {
			continue
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// Add implements Routes.
func (n *netlinkRoutes) Add(r Route) error {
	if err := r.Validate(); err != nil {
		return err
	}
	foreign, err := n.foreign(r.Dst)
	if err != nil {
		return err
	}
	if foreign != nil {
		return fmt.Errorf("adding %s: %w (protocol %d)", r, ErrForeignRoute, foreign.Protocol)
	}
	if err := n.h.RouteReplace(toNetlink(r)); err != nil {
		return fmt.Errorf("adding %s: %w", r, err)
	}
	return nil
}

// Delete implements Routes.
func (n *netlinkRoutes) Delete(r Route) error {
	if err := r.ValidateDelete(); err != nil {
		return err
	}
	// The kernel matches the protocol (and the gateway, when given) on
	// delete, so another owner's route to the same destination is safe.
	err := n.h.RouteDel(toNetlink(r))
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("deleting %s: %w", r, err)
	}
	return nil
}

// foreign returns a route to dst in the main table that is not berth's, or
// nil.
func (n *netlinkRoutes) foreign(dst netip.Prefix) (*netlink.Route, error) {
	filter := &netlink.Route{Dst: ipNet(dst), Table: unix.RT_TABLE_MAIN}
	nrs, err := n.h.RouteListFiltered(family(dst.Addr()), filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing routes to %s: %w", dst, err)
	}
	for i := range nrs {
		if nrs[i].Protocol != Protocol {
			return &nrs[i], nil
		}
	}
	return nil, nil
}

func toNetlink(r Route) *netlink.Route {
	nr := &netlink.Route{
		Dst:      ipNet(r.Dst),
		Protocol: Protocol,
		Table:    unix.RT_TABLE_MAIN,
		Family:   family(r.Dst.Addr()),
	}
	if r.Gateway.IsValid() {
		nr.Gw = net.IP(r.Gateway.AsSlice())
	}
	return nr
}

// fromNetlink converts one of berth's routes; ok is false for a route berth
// cannot have made (no destination or several next hops).
func fromNetlink(nr *netlink.Route) (r Route, ok bool) {
	if nr.Dst == nil || len(nr.MultiPath) > 0 {
		return Route{}, false
	}
	addr, ok := netip.AddrFromSlice(nr.Dst.IP)
	if !ok {
		return Route{}, false
	}
	ones, _ := nr.Dst.Mask.Size()
	r.Dst = netip.PrefixFrom(addr.Unmap(), ones)
	if gw, ok := netip.AddrFromSlice(nr.Gw); ok {
		r.Gateway = gw.Unmap()
	}
	return r, true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{
		IP:   net.IP(p.Addr().AsSlice()),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
}

func family(a netip.Addr) int {
	if a.Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
