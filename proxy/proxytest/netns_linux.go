package proxytest

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

// RequireRoot skips a test that needs to create network namespaces.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the kernel test needs root to create network namespaces and program them (run as root; CI does)")
	}
}

// Netns is a network namespace of the test's own: a thread unshared into
// it runs the functions the test hands it (Do). The thread is never
// unlocked, so it dies with its goroutine at cleanup and the namespace
// with its last reference; the host's namespace is never touched.
type Netns struct {
	calls chan func()
	// Handle is a netlink handle in the namespace.
	Handle *netlink.Handle
	// NS is a reference to the namespace (for moving links into it).
	NS netns.NsHandle
}

// NewNetns creates a namespace with its loopback up, closed at the test's
// cleanup; it skips the test where namespaces cannot be created.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	n := &Netns{calls: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		var err error
		if n.NS, err = netns.Get(); err == nil {
			n.Handle, err = netlink.NewHandle()
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
		n.Handle.Close()
		n.NS.Close()
	})
	if err := n.Up("lo"); err != nil {
		t.Fatal(err)
	}
	return n
}

// Do runs f on the namespace's thread: sockets f opens and processes it
// starts live in the namespace.
func (n *Netns) Do(f func()) {
	done := make(chan struct{})
	n.calls <- func() {
		defer close(done)
		f()
	}
	<-done
}

// Up sets the link up.
func (n *Netns) Up(name string) error {
	l, err := n.Handle.LinkByName(name)
	if err == nil {
		err = n.Handle.LinkSetUp(l)
	}
	if err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return nil
}

// AddAddr puts the address, of prefix length bits, on the link, without
// duplicate address detection (IPv6 addresses are usable at once).
func (n *Netns) AddAddr(name string, a netip.Addr, bits int) error {
	l, err := n.Handle.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}, Flags: unix.IFA_F_NODAD}
	if err := n.Handle.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("adding %s to %s: %w", a, name, err)
	}
	return nil
}

// Forward turns on forwarding of both families in the namespace, and off
// the reverse-path filter (the tests route asymmetrically on purpose).
// The sysctls are per namespace, read from the opening thread's.
func (n *Netns) Forward() (err error) {
	n.Do(func() {
		for _, p := range []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding", "ipv4/conf/all/rp_filter", "ipv4/conf/default/rp_filter"} {
			v := "1"
			if p == "ipv4/conf/all/rp_filter" || p == "ipv4/conf/default/rp_filter" {
				v = "0"
			}
			if err = os.WriteFile("/proc/sys/net/"+p, []byte(v), 0o644); err != nil {
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("enabling forwarding: %w", err)
	}
	return nil
}

// NoDAD turns off IPv6 duplicate address detection for the links created
// in the namespace from now on: their addresses (link-local ones too) are
// usable at once, not tentative for a second or more.
func (n *Netns) NoDAD() (err error) {
	n.Do(func() {
		for _, p := range []string{"all", "default"} {
			if err = os.WriteFile("/proc/sys/net/ipv6/conf/"+p+"/accept_dad", []byte("0"), 0o644); err != nil {
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("turning off IPv6 DAD: %w", err)
	}
	return nil
}
