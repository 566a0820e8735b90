package link_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/netrules/link"
	linktesting "github.com/berthnode/berth/netrules/link/testing"
)

// TestNetlinkContract runs the contract suite against the kernel, each
// subtest in a network namespace of its own that the test creates and that
// disappears with its last socket; the host's namespace is never touched.
func TestNetlinkContract(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the kernel route test needs root to create network namespaces (run as root; CI does)")
	}
	linktesting.RunRoutesContract(t, func(t *testing.T) linktesting.Subject {
		h := newNetns(t)
		return linktesting.Subject{Routes: link.NewRoutesForHandle(h), Others: staticRoutes{h: h}}
	})
}

// newNetns returns a netlink handle bound to a fresh network namespace with
// a veth link carrying the suite's on-link networks (a veth pair, since not
// every kernel has the dummy driver). Closing the handle (at
// test cleanup) drops the last reference to the namespace.
func newNetns(t *testing.T) *netlink.Handle {
	t.Helper()
	type result struct {
		h   *netlink.Handle
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread is never unlocked: it switched namespaces, so it ends
		// with this goroutine instead of going back to the scheduler's pool.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("unshare(CLONE_NEWNET): %w", err)}
			return
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		done <- result{h: h, err: err}
	}()
	r := <-done
	if errors.Is(r.err, unix.EPERM) {
		t.Skipf("skipping: cannot create a network namespace here: %v", r.err)
	}
	if r.err != nil {
		t.Fatalf("creating a network namespace: %v", r.err)
	}
	t.Cleanup(r.h.Close)
	if err := addLink(r.h); err != nil {
		t.Fatalf("setting up the test namespace: %v", err)
	}
	return r.h
}

func addLink(h *netlink.Handle) error {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "berth-test0"}, PeerName: "berth-test1"}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("adding veth pair: %w", err)
	}
	l, err := h.LinkByName("berth-test0")
	if err != nil {
		return fmt.Errorf("finding veth link: %w", err)
	}
	peer, err := h.LinkByName("berth-test1")
	if err != nil {
		return fmt.Errorf("finding veth peer: %w", err)
	}
	// Both ends up, so the link has carrier and its routes are usable.
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("setting veth peer up: %w", err)
	}
	for _, cidr := range []string{linktesting.OnLinkIPv4, linktesting.OnLinkIPv6} {
		p := netip.MustParsePrefix(cidr)
		addr := &netlink.Addr{
			IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
			// No duplicate address detection: the address is usable at once.
			Flags: unix.IFA_F_NODAD,
		}
		if err := h.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("adding %s: %w", cidr, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting veth link up: %w", err)
	}
	return nil
}

// staticRoutes is another owner of routes: protocol static, as `ip route
// add` makes them.
type staticRoutes struct{ h *netlink.Handle }

func (s staticRoutes) Add(r link.Route) error {
	p := r.Dst
	return s.h.RouteReplace(&netlink.Route{
		Dst:      &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Gw:       r.Gateway.AsSlice(),
		Protocol: unix.RTPROT_STATIC,
	})
}

func (s staticRoutes) List() ([]link.Route, error) {
	nrs, err := s.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: unix.RTPROT_STATIC}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, err
	}
	var routes []link.Route
	for _, nr := range nrs {
		dst, _ := netip.AddrFromSlice(nr.Dst.IP)
		ones, _ := nr.Dst.Mask.Size()
		gw, _ := netip.AddrFromSlice(nr.Gw)
		routes = append(routes, link.Route{Dst: netip.PrefixFrom(dst.Unmap(), ones), Gateway: gw.Unmap()})
	}
	return routes, nil
}
