package nftables_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/proxy/proxytest"
)

// The kernel tests use proxytest's namespace helper: a namespace of the
// test's own, whose thread runs the functions handed to Do.
type testNetns = proxytest.Netns

func requireRoot(tb testing.TB) { proxytest.RequireRoot(tb) }

func newTestNetns(tb testing.TB) *testNetns { return proxytest.NewNetns(tb) }

// link joins two test namespaces with a veth pair, addresses both ends
// (p's .1 in n, .2 in peer) and sets them up.
func link(n, peer *testNetns, name string, p netip.Prefix) error {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name + "a"}, PeerName: name + "b", PeerNamespace: netlink.NsFd(peer.NS)}
	if err := n.Handle.LinkAdd(veth); err != nil {
		return fmt.Errorf("adding veth %s: %w", name, err)
	}
	a := p.Addr()
	for _, side := range []struct {
		n    *testNetns
		name string
	}{{n, name + "a"}, {peer, name + "b"}} {
		a = a.Next()
		l, err := side.n.Handle.LinkByName(side.name)
		if err != nil {
			return fmt.Errorf("finding %s: %w", side.name, err)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}, Flags: unix.IFA_F_NODAD}
		if err := side.n.Handle.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("adding %s to %s: %w", a, side.name, err)
		}
		if err := side.n.Handle.LinkSetUp(l); err != nil {
			return fmt.Errorf("setting %s up: %w", side.name, err)
		}
	}
	return nil
}

// defaultRoute routes everything from n via gw.
func defaultRoute(n *testNetns, gw netip.Addr) error {
	if err := n.Handle.RouteAdd(&netlink.Route{Gw: gw.AsSlice()}); err != nil {
		return fmt.Errorf("adding default route via %s: %w", gw, err)
	}
	return nil
}

// sysctl writes a sysctl of the namespace.
func sysctl(n *testNetns, name, value string) (err error) {
	n.Do(func() { err = os.WriteFile("/proc/sys/"+name, []byte(value), 0o644) })
	return err
}
