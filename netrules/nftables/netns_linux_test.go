package nftables_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs to create network namespaces.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipping: the kernel test needs root to create network namespaces and program nftables in them (run as root; CI does)")
	}
}

// testNetns is a network namespace of the test's own: a thread unshared
// into it runs the functions the test hands it, and the nft binary runs
// from that thread, so in the namespace. The thread is never unlocked: it
// dies with its goroutine at cleanup, and the namespace with its last
// reference. The host's namespace is never touched.
type testNetns struct {
	calls  chan func()
	handle *netlink.Handle
	ns     netns.NsHandle
}

func newTestNetns(tb testing.TB) *testNetns {
	tb.Helper()
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
		tb.Skipf("skipping: cannot create a network namespace here: %v", err)
	}
	if err != nil {
		tb.Fatalf("creating a network namespace: %v", err)
	}
	tb.Cleanup(func() {
		close(n.calls)
		n.handle.Close()
		n.ns.Close()
	})
	if err := n.up("lo"); err != nil {
		tb.Fatal(err)
	}
	return n
}

// do runs f on the namespace's thread.
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

// link joins two test namespaces with a veth pair, addresses both ends
// (p's .1 in n, .2 in peer) and sets them up.
func link(n, peer *testNetns, name string, p netip.Prefix) error {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name + "a"}, PeerName: name + "b", PeerNamespace: netlink.NsFd(peer.ns)}
	if err := n.handle.LinkAdd(veth); err != nil {
		return fmt.Errorf("adding veth %s: %w", name, err)
	}
	a := p.Addr()
	for _, side := range []struct {
		n    *testNetns
		name string
	}{{n, name + "a"}, {peer, name + "b"}} {
		a = a.Next()
		l, err := side.n.handle.LinkByName(side.name)
		if err != nil {
			return fmt.Errorf("finding %s: %w", side.name, err)
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

// sysctl writes a sysctl of the namespace (read from the opening
// thread's namespace).
func (n *testNetns) sysctl(name, value string) (err error) {
	n.do(func() { err = os.WriteFile("/proc/sys/"+name, []byte(value), 0o644) })
	return err
}
