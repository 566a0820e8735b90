package conntrack_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/netrules/conntrack"
	conntracktesting "github.com/berthnode/berth/netrules/conntrack/testing"
	"github.com/berthnode/berth/proxy"
)

// TestKernelContract runs the suite against the kernel's conntrack table,
// in a network namespace of the test's own where UDP flows to service
// addresses are DNATed (by iptables) to local endpoint addresses.
func TestKernelContract(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the kernel conntrack test needs root to create network namespaces (run as root; CI does)")
	}
	conntracktesting.RunContract(t, func(t *testing.T, f proxy.Family) conntracktesting.Subject {
		ns := newNetns(t, f)
		port := 40000
		return conntracktesting.Subject{
			Conntrack: conntrack.NewForHandle(ns.nf),
			AddUDP: func(t *testing.T, service, endpoint netip.AddrPort) conntracktesting.Flow {
				port++
				return ns.addUDP(t, f, port, service, endpoint)
			},
			Flows: func(t *testing.T) []conntracktesting.Flow { return ns.flows(t, f) },
		}
	})
}

func TestInvalidAddresses(t *testing.T) {
	c := conntrack.NewForHandle(nil)
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")
	for name, err := range map[string]error{
		"no service IP":  c.ClearUDPForServiceIP(netip.Addr{}),
		"no endpoint IP": c.ClearUDPForEndpoint(v4, 53, netip.Addr{}),
		"mixed families": c.ClearUDPForEndpoint(v4, 53, v6),
	} {
		if !errors.Is(err, conntrack.ErrInvalidAddress) {
			t.Errorf("%s: %v, want ErrInvalidAddress", name, err)
		}
	}
}

// testNetns is a namespace with a thread in it that runs what the test
// hands it; the thread is never unlocked, so it ends (and the namespace
// with it) when the test is done.
type testNetns struct {
	calls chan func()
	// nf is a netfilter netlink handle in the namespace.
	nf *netlink.Handle
}

func newNetns(t *testing.T, f proxy.Family) *testNetns {
	t.Helper()
	n := &testNetns{calls: make(chan func())}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := unix.Unshare(unix.CLONE_NEWNET)
		if err == nil {
			err = setupLinks(f)
		}
		if err == nil {
			n.nf, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
		}
		errc <- err
		if err != nil {
			return
		}
		for fn := range n.calls {
			fn()
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
		n.nf.Close()
	})
	return n
}

func (n *testNetns) do(fn func()) {
	done := make(chan struct{})
	n.calls <- func() { defer close(done); fn() }
	<-done
}

// setupLinks gives the calling thread's namespace a veth pair carrying the
// suite's endpoint addresses, and routes the service range over it.
func setupLinks(f proxy.Family) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ct0"}, PeerName: "ct1"}); err != nil {
		return fmt.Errorf("adding veth: %w", err)
	}
	bits, svcNet := 24, netip.MustParsePrefix("10.96.0.0/16")
	if f == proxy.IPv6 {
		bits, svcNet = 64, netip.MustParsePrefix("fd00:96::/64")
	}
	var ct0 netlink.Link
	for _, name := range []string{"lo", "ct1", "ct0"} {
		if ct0, err = h.LinkByName(name); err == nil {
			err = h.LinkSetUp(ct0)
		}
		if err != nil {
			return fmt.Errorf("setting %s up: %w", name, err)
		}
	}
	for _, i := range []int{1, 2} {
		a := conntracktesting.Endpoint(f, i)
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, a.BitLen())}, Flags: unix.IFA_F_NODAD}
		if err := h.AddrAdd(ct0, addr); err != nil {
			return fmt.Errorf("adding %s: %w", a, err)
		}
	}
	dst := &net.IPNet{IP: svcNet.Addr().AsSlice(), Mask: net.CIDRMask(svcNet.Bits(), svcNet.Addr().BitLen())}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: ct0.Attrs().Index, Dst: dst}); err != nil {
		return fmt.Errorf("routing %s: %w", svcNet, err)
	}
	return nil
}

// addUDP DNATs datagrams from the client port to service onto endpoint,
// sends one, and returns the flow conntrack made of it.
func (n *testNetns) addUDP(t *testing.T, f proxy.Family, port int, service, endpoint netip.AddrPort) conntracktesting.Flow {
	t.Helper()
	bin := "iptables"
	if f == proxy.IPv6 {
		bin = "ip6tables"
	}
	var err error
	var out []byte
	n.do(func() {
		out, err = exec.Command(bin, "-t", "nat", "-A", "OUTPUT", "-d", service.Addr().String(), "-p", "udp",
			"-m", "udp", "--sport", fmt.Sprint(port), "--dport", fmt.Sprint(service.Port()),
			"-j", "DNAT", "--to-destination", endpoint.String()).CombinedOutput()
		if err != nil {
			return
		}
		var c *net.UDPConn
		if c, err = net.ListenUDP("udp", &net.UDPAddr{Port: port}); err != nil {
			return
		}
		defer c.Close()
		_, err = c.WriteTo([]byte("hi"), net.UDPAddrFromAddrPort(service))
	})
	if err != nil {
		t.Fatalf("making a UDP flow to %s: %v %s", service, err, out)
	}
	for _, fl := range n.flows(t, f) {
		if fl.Client.Port() == uint16(port) {
			return fl
		}
	}
	t.Fatalf("conntrack has no flow from port %d to %s", port, service)
	return conntracktesting.Flow{}
}

func (n *testNetns) flows(t *testing.T, f proxy.Family) []conntracktesting.Flow {
	t.Helper()
	family := netlink.InetFamily(unix.AF_INET)
	if f == proxy.IPv6 {
		family = unix.AF_INET6
	}
	list, err := n.nf.ConntrackTableList(netlink.ConntrackTable, family)
	if err != nil {
		t.Fatalf("listing conntrack: %v", err)
	}
	var out []conntracktesting.Flow
	for _, fl := range list {
		if fl.Forward.Protocol != unix.IPPROTO_UDP {
			continue
		}
		ap := func(ip net.IP, port uint16) netip.AddrPort {
			a, _ := netip.AddrFromSlice(ip)
			if f == proxy.IPv4 {
				a = a.Unmap()
			}
			return netip.AddrPortFrom(a, port)
		}
		out = append(out, conntracktesting.Flow{
			Client:   ap(fl.Forward.SrcIP, fl.Forward.SrcPort),
			Service:  ap(fl.Forward.DstIP, fl.Forward.DstPort),
			Endpoint: ap(fl.Reverse.SrcIP, fl.Reverse.SrcPort),
		})
	}
	return out
}
