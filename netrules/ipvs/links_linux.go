package ipvs

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/netrules/link"
	"github.com/berthnode/berth/proxy"
)

// netlinkLinks is Links over a netlink route socket bound to the network
// namespace that was current when it was opened.
type netlinkLinks struct {
	h *netlink.Handle
}

// NewLinks returns the kernel's Links for the network namespace of the
// calling thread.
func NewLinks() (Links, error) {
	h, err := link.OpenHandle()
	if err != nil {
		return nil, err
	}
	return &netlinkLinks{h: h}, nil
}

func (n *netlinkLinks) link(name string) (netlink.Link, error) {
	l, err := n.h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchLink, name)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up interface %s: %w", name, err)
	}
	return l, nil
}

// EnsureDummy implements Links.
func (n *netlinkLinks) EnsureDummy(name string) error {
	l, err := n.link(name)
	if err == nil {
		if l.Type() != "dummy" {
			return fmt.Errorf("interface %s exists and is a %s, not a dummy", name, l.Type())
		}
		return nil
	}
	if !errors.Is(err, ErrNoSuchLink) {
		return err
	}
	if err := n.h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating dummy interface %s: %w", name, err)
	}
	return nil
}

func nlFamily(f proxy.Family) int {
	if f == proxy.IPv6 {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

// Addrs implements Links.
func (n *netlinkLinks) Addrs(name string, f proxy.Family) ([]netip.Addr, error) {
	l, err := n.link(name)
	if err != nil {
		return nil, err
	}
	// ErrDumpInterrupted included: a partial list must not drive deletes.
	as, err := n.h.AddrList(l, nlFamily(f))
	if err != nil {
		return nil, fmt.Errorf("listing the addresses of %s: %w", name, err)
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// hostAddr is a as a /32 or /128. IPv6 addresses skip duplicate address
// detection: they are the node's own service addresses, and a tentative
// address would not take traffic until DAD ends.
func hostAddr(a netip.Addr) *netlink.Addr {
	na := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}}
	if a.Is6() {
		na.Flags = unix.IFA_F_NODAD
	}
	return na
}

// AddAddr implements Links.
func (n *netlinkLinks) AddAddr(name string, a netip.Addr) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if err := n.h.AddrAdd(l, hostAddr(a)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding %s to %s: %w", a, name, err)
	}
	return nil
}

// DelAddr implements Links.
func (n *netlinkLinks) DelAddr(name string, a netip.Addr) error {
	l, err := n.link(name)
	if err != nil {
		return err
	}
	if err := n.h.AddrDel(l, hostAddr(a)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("removing %s from %s: %w", a, name, err)
	}
	return nil
}

// LocalAddrs implements Links.
func (n *netlinkLinks) LocalAddrs(f proxy.Family) ([]LocalAddr, error) {
	links, err := n.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	byIndex := make(map[int]netlink.Link, len(links))
	for _, l := range links {
		byIndex[l.Attrs().Index] = l
	}
	as, err := n.h.AddrList(nil, nlFamily(f))
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	out := make([]LocalAddr, 0, len(as))
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP)
		l := byIndex[a.LinkIndex]
		if !ok || l == nil {
			continue
		}
		out = append(out, LocalAddr{Addr: ip.Unmap(), Link: l.Attrs().Name, Loopback: l.Attrs().Flags&net.FlagLoopback != 0})
	}
	return out, nil
}
