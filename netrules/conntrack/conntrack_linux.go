package conntrack

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/proxy"
)

// ErrInvalidAddress is returned for a missing address, or a service and an
// endpoint address of different families.
var ErrInvalidAddress = errors.New("invalid address")

// Cleaner deletes conntrack entries of the network namespace its netlink
// handle lives in. It implements proxy.Conntrack.
type Cleaner struct {
	h *netlink.Handle
}

var _ proxy.Conntrack = (*Cleaner)(nil)

// New returns a Cleaner for the calling thread's network namespace (the
// host's, for the daemon).
func New() (*Cleaner, error) {
	h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket: %w", err)
	}
	return &Cleaner{h: h}, nil
}

// NewForHandle returns a Cleaner working through h, which must have a
// NETLINK_NETFILTER socket (netlink.NewHandle(unix.NETLINK_NETFILTER) in the
// namespace to clean).
func NewForHandle(h *netlink.Handle) *Cleaner { return &Cleaner{h: h} }

// Close releases the netlink socket.
func (c *Cleaner) Close() { c.h.Close() }

// ClearUDPForServiceIP removes the UDP entries whose original destination
// is ip, whatever the port and endpoint: a service address that got its
// first endpoint (entries made while it had none lead nowhere) or went away.
func (c *Cleaner) ClearUDPForServiceIP(ip netip.Addr) error {
	if !ip.IsValid() {
		return fmt.Errorf("%w: no service IP", ErrInvalidAddress)
	}
	f := &netlink.ConntrackFilter{}
	if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
		return err
	}
	if err := f.AddIP(netlink.ConntrackOrigDstIP, ip.Unmap().AsSlice()); err != nil {
		return err
	}
	return c.delete(ip, f)
}

// ClearUDPForEndpoint removes the UDP entries to svcIP:port that were NATed
// to endpointIP: the endpoint left the service. An invalid svcIP matches
// any destination (a node port, reached on any of the node's addresses);
// port 0 matches any port.
func (c *Cleaner) ClearUDPForEndpoint(svcIP netip.Addr, port uint16, endpointIP netip.Addr) error {
	if !endpointIP.IsValid() {
		return fmt.Errorf("%w: no endpoint IP", ErrInvalidAddress)
	}
	if svcIP.IsValid() && svcIP.Unmap().Is4() != endpointIP.Unmap().Is4() {
		return fmt.Errorf("%w: service IP %s and endpoint IP %s are of different families", ErrInvalidAddress, svcIP, endpointIP)
	}
	f := &netlink.ConntrackFilter{}
	if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
		return err
	}
	if err := f.AddIP(netlink.ConntrackReplySrcIP, endpointIP.Unmap().AsSlice()); err != nil {
		return err
	}
	if svcIP.IsValid() {
		if err := f.AddIP(netlink.ConntrackOrigDstIP, svcIP.Unmap().AsSlice()); err != nil {
			return err
		}
	}
	if port != 0 {
		if err := f.AddPort(netlink.ConntrackOrigDstPort, port); err != nil {
			return err
		}
	}
	return c.delete(endpointIP, f)
}

// delete removes the entries of a's family that f matches.
func (c *Cleaner) delete(a netip.Addr, f *netlink.ConntrackFilter) error {
	family := netlink.InetFamily(unix.AF_INET6)
	if a.Unmap().Is4() {
		family = unix.AF_INET
	}
	if _, err := c.h.ConntrackDeleteFilters(netlink.ConntrackTable, family, f); err != nil {
		return fmt.Errorf("deleting conntrack entries: %w", err)
	}
	return nil
}
