package iptables_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"

	goipt "github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// nsExec runs the iptables binaries in a test namespace.
type nsExec struct{ n *proxytest.Netns }

func (e nsExec) Run(ctx context.Context, stdin []byte, name string, args ...string) (out []byte, err error) {
	e.n.Do(func() { out, err = xtables.OSExec{}.Run(ctx, stdin, name, args...) })
	return out, err
}

// RunTo and RunFrom make nsExec an xtables.StreamExec, as xtables.OSExec is: the backend's
// kernel tests then stream iptables-save's output and full payloads.
func (e nsExec) RunTo(ctx context.Context, stdout io.Writer, name string, args ...string) (err error) {
	e.n.Do(func() { err = xtables.OSExec{}.RunTo(ctx, stdout, name, args...) })
	return err
}

func (e nsExec) RunFrom(ctx context.Context, stdin io.Reader, name string, args ...string) (out []byte, err error) {
	e.n.Do(func() { out, err = xtables.OSExec{}.RunFrom(ctx, stdin, name, args...) })
	return out, err
}

var _ xtables.StreamExec = nsExec{}

// nsHooks is go-iptables in a test namespace.
type nsHooks struct {
	n   *proxytest.Netns
	ipt *goipt.IPTables
}

// newNSHooks runs go-iptables on the family's iptables binary, with the
// given suffix ("", "-legacy").
func newNSHooks(t *testing.T, n *proxytest.Netns, f proxy.Family, suffix string) nsHooks {
	t.Helper()
	proto, bin := goipt.ProtocolIPv4, "iptables"+suffix
	if f == proxy.IPv6 {
		proto, bin = goipt.ProtocolIPv6, "ip6tables"+suffix
	}
	h := nsHooks{n: n}
	var err error
	n.Do(func() { h.ipt, err = goipt.New(goipt.IPFamily(proto), goipt.Path(bin), goipt.Timeout(5)) })
	if err != nil {
		t.Fatalf("go-iptables: %v", err)
	}
	return h
}

func (h nsHooks) Exists(table, chain string, rulespec ...string) (ok bool, err error) {
	h.n.Do(func() { ok, err = h.ipt.Exists(table, chain, rulespec...) })
	return ok, err
}

func (h nsHooks) Insert(table, chain string, pos int, rulespec ...string) (err error) {
	h.n.Do(func() { err = h.ipt.Insert(table, chain, pos, rulespec...) })
	return err
}

// link joins two test namespaces with a veth pair, addresses both ends
// (a.1 in n, a.2 in peer, of prefix p) and sets them up.
func link(n, peer *proxytest.Netns, name string, p netip.Prefix) error {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name + "a"}, PeerName: name + "b", PeerNamespace: netlink.NsFd(peer.NS)}
	if err := n.Handle.LinkAdd(veth); err != nil {
		return fmt.Errorf("adding veth %s: %w", name, err)
	}
	for i, side := range []struct {
		n    *proxytest.Netns
		name string
	}{{n, name + "a"}, {peer, name + "b"}} {
		l, err := side.n.Handle.LinkByName(side.name)
		if err != nil {
			return fmt.Errorf("finding %s: %w", side.name, err)
		}
		a := p.Addr()
		for range i + 1 {
			a = a.Next()
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
func defaultRoute(n *proxytest.Netns, gw netip.Addr) error {
	if err := n.Handle.RouteAdd(&netlink.Route{Gw: gw.AsSlice()}); err != nil {
		return fmt.Errorf("adding default route via %s: %w", gw, err)
	}
	return nil
}
