package iptables_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	goipt "github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

// requireRoot skips a test that needs to create network namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the kernel test needs root to create network namespaces and program iptables in them (run as root; CI does)")
	}
}

// testNetns is a network namespace of the test's own: a thread unshared
// into it runs the functions the test hands it. The thread is never
// unlocked, so it dies with its goroutine at cleanup and the namespace with
// its last reference; the host's namespace is never touched.
type testNetns struct {
	calls chan func()
	// handle is a netlink handle in the namespace, ns a reference to it.
	handle *netlink.Handle
	ns     netns.NsHandle
}

func newTestNetns(t *testing.T) *testNetns {
	t.Helper()
	n := &testNetns{calls: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		var err error
		if n.ns, err = netns.Get(); err == nil {
			n.handle, err = netlink.NewHandle()
		}
		errc <- err
		if err != nil {
			return
		}
		for f := range n.calls {
			f()
		}
	}()
	err := <-errc
	if errors.Is(err, unix.EPERM) {
		t.Skipf("skipping: cannot create a network namespace here: %v", err)
	}
	if err != nil {
		t.Fatalf("creating a network namespace: %v", err)
	}
	t.Cleanup(func() {
		close(n.calls)
		n.handle.Close()
		n.ns.Close()
	})
	if err := n.up("lo"); err != nil {
		t.Fatal(err)
	}
	return n
}

// do runs f on the namespace's thread: sockets f opens and processes it
// starts live in the namespace.
func (n *testNetns) do(f func()) {
	done := make(chan struct{})
	n.calls <- func() {
		defer close(done)
		f()
	}
	<-done
}

func (n *testNetns) up(name string) error {
	l, err := n.handle.LinkByName(name)
	if err == nil {
		err = n.handle.LinkSetUp(l)
	}
	if err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return nil
}

// nsExec runs the iptables binaries in a test namespace.
type nsExec struct{ n *testNetns }

func (e nsExec) Run(ctx context.Context, stdin []byte, name string, args ...string) (out []byte, err error) {
	e.n.do(func() { out, err = xtables.OSExec{}.Run(ctx, stdin, name, args...) })
	return out, err
}

// RunTo and RunFrom make nsExec an xtables.StreamExec, as xtables.OSExec is: the backend's
// kernel tests then stream iptables-save's output and full payloads.
func (e nsExec) RunTo(ctx context.Context, stdout io.Writer, name string, args ...string) (err error) {
	e.n.do(func() { err = xtables.OSExec{}.RunTo(ctx, stdout, name, args...) })
	return err
}

func (e nsExec) RunFrom(ctx context.Context, stdin io.Reader, name string, args ...string) (out []byte, err error) {
	e.n.do(func() { out, err = xtables.OSExec{}.RunFrom(ctx, stdin, name, args...) })
	return out, err
}

var _ xtables.StreamExec = nsExec{}

// nsHooks is go-iptables in a test namespace.
type nsHooks struct {
	n   *testNetns
	ipt *goipt.IPTables
}

// newNSHooks runs go-iptables on the family's iptables binary, with the
// given suffix ("", "-legacy").
func newNSHooks(t *testing.T, n *testNetns, f proxy.Family, suffix string) nsHooks {
	t.Helper()
	proto, bin := goipt.ProtocolIPv4, "iptables"+suffix
	if f == proxy.IPv6 {
		proto, bin = goipt.ProtocolIPv6, "ip6tables"+suffix
	}
	h := nsHooks{n: n}
	var err error
	n.do(func() { h.ipt, err = goipt.New(goipt.IPFamily(proto), goipt.Path(bin), goipt.Timeout(5)) })
	if err != nil {
		t.Fatalf("go-iptables: %v", err)
	}
	return h
}

func (h nsHooks) Exists(table, chain string, rulespec ...string) (ok bool, err error) {
	h.n.do(func() { ok, err = h.ipt.Exists(table, chain, rulespec...) })
	return ok, err
}

func (h nsHooks) Insert(table, chain string, pos int, rulespec ...string) (err error) {
	h.n.do(func() { err = h.ipt.Insert(table, chain, pos, rulespec...) })
	return err
}

// link joins two test namespaces with a veth pair, addresses both ends
// (a.1 in n, a.2 in peer, of prefix p) and sets them up.
func link(n, peer *testNetns, name string, p netip.Prefix) error {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name + "a"}, PeerName: name + "b", PeerNamespace: netlink.NsFd(peer.ns)}
	if err := n.handle.LinkAdd(veth); err != nil {
		return fmt.Errorf("adding veth %s: %w", name, err)
	}
	for i, side := range []struct {
		n    *testNetns
		name string
	}{{n, name + "a"}, {peer, name + "b"}} {
		l, err := side.n.handle.LinkByName(side.name)
		if err != nil {
			return fmt.Errorf("finding %s: %w", side.name, err)
		}
		a := p.Addr()
		for range i + 1 {
			a = a.Next()
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}, Flags: unix.IFA_F_NODAD}
		if err := side.n.handle.AddrAdd(l, addr); err != nil {
			return fmt.Errorf("adding %s to %s: %w", a, side.name, err)
		}
		if err := side.n.handle.LinkSetUp(l); err != nil {
			return fmt.Errorf("setting %s up: %w", side.name, err)
		}
	}
	return nil
}

// defaultRoute routes everything from n via gw.
func (n *testNetns) defaultRoute(gw netip.Addr) error {
	if err := n.handle.RouteAdd(&netlink.Route{Gw: gw.AsSlice()}); err != nil {
		return fmt.Errorf("adding default route via %s: %w", gw, err)
	}
	return nil
}

// forward turns on IPv4 forwarding in the namespace (the sysctl is per
// namespace, read from the opening thread's).
func (n *testNetns) forward() (err error) {
	n.do(func() { err = os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644) })
	return err
}
