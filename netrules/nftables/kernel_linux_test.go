package nftables_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/netrules/nftables"
	"github.com/berthnode/berth/proxy"
)

// The traffic tests' topology: a node namespace (192.168.100.1) routing
// between a client (192.168.100.2) and three endpoint namespaces
// (10.244.i.2), programmed by the backend for the cluster IP 10.96.0.100.
var (
	trafficVIP    = netip.MustParseAddr("10.96.0.100")
	trafficClient = netip.MustParsePrefix("192.168.100.0/24")
	trafficNode   = netip.MustParseAddr("192.168.100.1")
)

func trafficEndpoint(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", i))
}

type topology struct {
	node, client *testNetns
	eps          []proxy.Endpoint
	epNS         []*testNetns
	backend      *nftables.Backend
}

func newTopology(t *testing.T) *topology {
	requireRoot(t)
	tp := &topology{node: newTestNetns(t), client: newTestNetns(t)}
	if err := link(tp.node, tp.client, "cl", trafficClient); err != nil {
		t.Fatal(err)
	}
	if err := defaultRoute(tp.client, trafficNode); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		ep := newTestNetns(t)
		p := trafficEndpoint(i)
		if err := link(tp.node, ep, fmt.Sprintf("ep%d", i), p); err != nil {
			t.Fatal(err)
		}
		if err := defaultRoute(ep, p.Addr().Next()); err != nil {
			t.Fatal(err)
		}
		addr := p.Addr().Next().Next()
		serveEcho(t, ep, fmt.Sprintf("ep%d", i), addr)
		tp.epNS = append(tp.epNS, ep)
		tp.eps = append(tp.eps, proxy.Endpoint{IP: addr, Port: 8080, Ready: true, Serving: true})
	}
	// The node routes the service range out of an interface of its own (as a
	// node with a default route would), so that traffic to a cluster IP
	// without endpoints reaches the forward hook; not back out of the
	// client's link, which would answer with a redirect first and then
	// rate-limit the reject's ICMP error.
	// (A veth pair with both ends in the node: this kernel has no dummy.)
	if err := tp.node.Handle.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "svc0"}, PeerName: "svc1"}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"svc0", "svc1"} {
		if err := tp.node.Up(l); err != nil {
			t.Fatal(err)
		}
	}
	svc0, err := tp.node.Handle.LinkByName("svc0")
	if err != nil {
		t.Fatal(err)
	}
	_, svcRange, _ := net.ParseCIDR("10.96.0.0/16")
	if err := tp.node.Handle.RouteAdd(&netlink.Route{LinkIndex: svc0.Attrs().Index, Dst: svcRange}); err != nil {
		t.Fatal(err)
	}
	if err := sysctl(tp.node, "net/ipv4/ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	b, err := nftables.New(nftables.Config{Family: proxy.IPv4, MasqueradeBit: nftables.DefaultMasqueradeBit, NetNS: int(tp.node.NS)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	tp.backend = b
	return tp
}

func (tp *topology) state(eps ...proxy.Endpoint) *proxy.State {
	return &proxy.State{
		Family:       proxy.IPv4,
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		NodeIPs:      []netip.Addr{trafficNode},
		Services: []proxy.ServicePort{{
			Name:     proxy.ServicePortName{Namespace: "default", Name: "echo", Port: "tcp", Protocol: proxy.TCP},
			Protocol: proxy.TCP, ClusterIPs: []netip.Addr{trafficVIP}, Port: 80, NodePort: 30080,
			ClusterEndpoints: eps, ExternalEndpoints: eps,
		}},
	}
}

// want is the answers of count connections going round the endpoints in
// turn, from endpoint first; each endpoint sees the node's address on its
// link (masqueraded: the client is outside the cluster CIDR).
func want(count int, eps ...int) []string {
	var out []string
	for k := range count {
		i := eps[k%len(eps)]
		out = append(out, fmt.Sprintf("ep%d %s", i, trafficEndpoint(i).Addr().Next()))
	}
	return out
}

// TestKernelRoundRobin: 30 new TCP connections to a cluster IP with 3
// endpoints land 10 on each, in the order of the State; the node port
// shares the turn. A partial sync that removes an endpoint starts the turn
// again over the other two; a full sync brings the third back.
func TestKernelRoundRobin(t *testing.T) {
	tp := newTopology(t)
	ctx := context.Background()
	if _, err := tp.backend.Sync(ctx, tp.state(tp.eps...), nil); err != nil {
		t.Fatalf("full Sync: %v", err)
	}
	got := dialMany(t, tp.client, netip.AddrPortFrom(trafficVIP, 80), 30)
	if diff := cmp.Diff(want(30, 1, 2, 3), got); diff != "" {
		t.Errorf("connections to the cluster IP (-want +got):\n%s", diff)
	}
	got = dialMany(t, tp.client, netip.AddrPortFrom(trafficNode, 30080), 3)
	if diff := cmp.Diff(want(3, 1, 2, 3), got); diff != "" {
		t.Errorf("connections to the node port (-want +got):\n%s", diff)
	}

	// A partial sync that changes endpoints but not their number changes
	// map elements only: the turn goes on. Connection 33 (from 0) takes
	// the first place; after the reorder 34 takes the second, now
	// endpoint 3's (a restarted turn would give endpoint 1).
	if got := dialMany(t, tp.client, netip.AddrPortFrom(trafficVIP, 80), 1); !cmp.Equal(got, want(1, 1)) {
		t.Errorf("connection 33: %v, want %v", got, want(1, 1))
	}
	key := tp.state().Services[0].Name.Key()
	if _, err := tp.backend.Sync(ctx, tp.state(tp.eps[0], tp.eps[2], tp.eps[1]), map[string]bool{key: true}); err != nil {
		t.Fatalf("partial Sync: %v", err)
	}
	got = dialMany(t, tp.client, netip.AddrPortFrom(trafficVIP, 80), 2)
	if diff := cmp.Diff(want(2, 3, 2), got); diff != "" {
		t.Errorf("after reordering the endpoints (-want +got):\n%s", diff)
	}

	res, err := tp.backend.Sync(ctx, tp.state(tp.eps[0], tp.eps[2]), map[string]bool{key: true})
	if err != nil || res.Full {
		t.Fatalf("partial Sync: %+v, %v", res, err)
	}
	got = dialMany(t, tp.client, netip.AddrPortFrom(trafficVIP, 80), 4)
	if diff := cmp.Diff(want(4, 1, 3), got); diff != "" {
		t.Errorf("after the partial sync (-want +got):\n%s", diff)
	}

	if _, err := tp.backend.Sync(ctx, tp.state(tp.eps...), nil); err != nil {
		t.Fatalf("second full Sync: %v", err)
	}
	got = dialMany(t, tp.client, netip.AddrPortFrom(trafficVIP, 80), 3)
	if diff := cmp.Diff(want(3, 1, 2, 3), got); diff != "" {
		t.Errorf("after the second full sync (-want +got):\n%s", diff)
	}
}

// TestKernelHairpin: an endpoint reaching the service lands on itself
// masqueraded (its own address could not answer itself un-NATed), and on
// the others with its own address (it is inside the cluster CIDR).
func TestKernelHairpin(t *testing.T) {
	tp := newTopology(t)
	if _, err := tp.backend.Sync(context.Background(), tp.state(tp.eps...), nil); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got := dialMany(t, tp.epNS[0], netip.AddrPortFrom(trafficVIP, 80), 3)
	self := tp.eps[0].IP.String()
	wantGot := []string{"ep1 " + trafficEndpoint(1).Addr().Next().String(), "ep2 " + self, "ep3 " + self}
	if diff := cmp.Diff(wantGot, got); diff != "" {
		t.Errorf("connections from endpoint 1 (-want +got):\n%s", diff)
	}
}

// TestKernelExternalLocal: with externalTrafficPolicy: Local the node
// port reaches only the node's endpoints, keeping the client's address;
// without one, it drops (no answer).
func TestKernelExternalLocal(t *testing.T) {
	tp := newTopology(t)
	ctx := context.Background()
	st := tp.state(tp.eps...)
	st.Services[0].ExternalLocal = true
	st.Services[0].ExternalEndpoints = tp.eps[1:2]
	if _, err := tp.backend.Sync(ctx, st, nil); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got := dialMany(t, tp.client, netip.AddrPortFrom(trafficNode, 30080), 3)
	client := trafficClient.Addr().Next().Next().String()
	if diff := cmp.Diff([]string{"ep2 " + client, "ep2 " + client, "ep2 " + client}, got); diff != "" {
		t.Errorf("node port, Local policy (-want +got):\n%s", diff)
	}
	st.Services[0].ExternalEndpoints = nil
	if _, err := tp.backend.Sync(ctx, st, map[string]bool{st.Services[0].Name.Key(): true}); err != nil {
		t.Fatalf("partial Sync: %v", err)
	}
	var err error
	tp.client.Do(func() {
		var c net.Conn
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(trafficNode, 30080).String(), 300*time.Millisecond)
		if err == nil {
			c.Close()
		}
	})
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Errorf("node port without local endpoints: %v, want a timeout (dropped)", err)
	}
}

// TestKernelNoEndpoints: a cluster IP and a node port without endpoints
// are rejected (connection refused, not a timeout).
func TestKernelNoEndpoints(t *testing.T) {
	tp := newTopology(t)
	if _, err := tp.backend.Sync(context.Background(), tp.state(), nil); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(trafficVIP, 80), netip.AddrPortFrom(trafficNode, 30080)} {
		var err error
		tp.client.Do(func() {
			var c net.Conn
			c, err = net.DialTimeout("tcp", dst.String(), 2*time.Second)
			if err == nil {
				c.Close()
			}
		})
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dialing %s without endpoints: %v, want connection refused", dst, err)
		}
	}
}

// TestKernelAffinity: with ClientIP affinity every connection of the
// client goes to the endpoint its first one took; when that endpoint goes,
// the client starts afresh on the others.
func TestKernelAffinity(t *testing.T) {
	tp := newTopology(t)
	ctx := context.Background()
	st := tp.state(tp.eps...)
	st.Services[0].AffinityTimeout = time.Hour
	if _, err := tp.backend.Sync(ctx, st, nil); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got := dialMany(t, tp.client, netip.AddrPortFrom(trafficVIP, 80), 6)
	if diff := cmp.Diff([]string{want(1, 1)[0], want(1, 1)[0], want(1, 1)[0], want(1, 1)[0], want(1, 1)[0], want(1, 1)[0]}, got); diff != "" {
		t.Errorf("connections with affinity (-want +got):\n%s", diff)
	}
	st = tp.state(tp.eps[1:]...)
	st.Services[0].AffinityTimeout = time.Hour
	if _, err := tp.backend.Sync(ctx, st, map[string]bool{st.Services[0].Name.Key(): true}); err != nil {
		t.Fatalf("partial Sync: %v", err)
	}
	got = dialMany(t, tp.client, netip.AddrPortFrom(trafficVIP, 80), 3)
	if diff := cmp.Diff(want(3, 2, 2, 2), got); diff != "" {
		t.Errorf("connections with affinity after the endpoint went (-want +got):\n%s", diff)
	}
}

// TestKernelSourceRanges: a load-balancer IP lets in the sources of its
// loadBalancerSourceRanges and drops the others (no answer, not a reject).
func TestKernelSourceRanges(t *testing.T) {
	tp := newTopology(t)
	ctx := context.Background()
	lb := netip.MustParseAddr("10.96.1.10")
	st := tp.state(tp.eps...)
	st.Services[0].LoadBalancerIPs = []netip.Addr{lb}
	st.Services[0].SourceRanges = []netip.Prefix{trafficClient}
	if _, err := tp.backend.Sync(ctx, st, nil); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got := dialMany(t, tp.client, netip.AddrPortFrom(lb, 80), 1)
	if diff := cmp.Diff(want(1, 1), got); diff != "" {
		t.Errorf("connection from an allowed source (-want +got):\n%s", diff)
	}
	st.Services[0].SourceRanges = []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}
	if _, err := tp.backend.Sync(ctx, st, map[string]bool{st.Services[0].Name.Key(): true}); err != nil {
		t.Fatalf("partial Sync: %v", err)
	}
	var err error
	tp.client.Do(func() {
		var c net.Conn
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(lb, 80).String(), 300*time.Millisecond)
		if err == nil {
			c.Close()
		}
	})
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Errorf("dialing from a source outside the ranges: %v, want a timeout (dropped)", err)
	}
	// The cluster IP is not restricted.
	if got := dialMany(t, tp.client, netip.AddrPortFrom(trafficVIP, 80), 1); len(got) != 1 {
		t.Errorf("cluster IP: %v", got)
	}
}

// TestKernelFailureKeepsRules: a sync that fails leaves the previous rules
// in force, and the next partial sync is refused until a full one.
func TestKernelFailureKeepsRules(t *testing.T) {
	tp := newTopology(t)
	ctx := context.Background()
	if _, err := tp.backend.Sync(ctx, tp.state(tp.eps...), nil); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	// A second service port on the same cluster IP and port (which
	// Compute never produces) makes the kernel refuse the transaction:
	// its element of the service-ips map exists with another verdict.
	bad := tp.state(tp.eps...)
	other := bad.Services[0]
	other.Name.Name = "other"
	other.ClusterEndpoints = tp.eps[2:]
	bad.Services = append(bad.Services, other)
	_, err := tp.backend.Sync(ctx, bad, map[string]bool{other.Name.Key(): true})
	if !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("partial Sync of a clashing service port: %v, want the kernel's EEXIST", err)
	}
	got := dialMany(t, tp.client, netip.AddrPortFrom(trafficVIP, 80), 3)
	if diff := cmp.Diff(want(3, 1, 2, 3), got); diff != "" {
		t.Errorf("after the failed partial sync (-want +got):\n%s", diff)
	}
	// The same caught before the kernel in a full sync.
	if _, err := tp.backend.Sync(ctx, bad, nil); !errors.Is(err, nftables.ErrInvalidState) {
		t.Fatalf("full Sync of a clashing state: %v, want ErrInvalidState", err)
	}
	bad = tp.state(tp.eps[0])
	bad.Services[0].ClusterEndpoints[0].Port = 0
	if _, err := tp.backend.Sync(ctx, bad, nil); !errors.Is(err, nftables.ErrInvalidState) {
		t.Fatalf("Sync of a bad state: %v, want ErrInvalidState", err)
	}
	key := tp.state().Services[0].Name.Key()
	if _, err := tp.backend.Sync(ctx, tp.state(tp.eps[0]), map[string]bool{key: true}); !errors.Is(err, proxy.ErrFullSyncRequired) {
		t.Fatalf("partial Sync after a failure: %v, want ErrFullSyncRequired", err)
	}
	got = dialMany(t, tp.client, netip.AddrPortFrom(trafficVIP, 80), 3)
	if diff := cmp.Diff(want(3, 1, 2, 3), got); diff != "" {
		t.Errorf("after the failed syncs (-want +got):\n%s", diff)
	}
}

// serveEcho answers each TCP connection on addr:8080 in namespace n with
// "name peer-address".
func serveEcho(t *testing.T, n *testNetns, name string, addr netip.Addr) {
	t.Helper()
	var ln net.Listener
	var err error
	n.Do(func() { ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 8080).String()) })
	if err != nil {
		t.Fatalf("listening in %s: %v", name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			fmt.Fprintf(c, "%s %s\n", name, host)
			c.Close()
		}
	}()
}

// dialMany opens count TCP connections from namespace n, one after the
// other, and returns the answers.
func dialMany(t *testing.T, n *testNetns, dst netip.AddrPort, count int) []string {
	t.Helper()
	var got []string
	for range count {
		var c net.Conn
		var err error
		n.Do(func() { c, err = net.DialTimeout("tcp", dst.String(), 2*time.Second) })
		if err != nil {
			t.Fatalf("dialing %s: %v", dst, err)
		}
		if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil {
			t.Fatalf("reading from %s: %v", dst, err)
		}
		got = append(got, strings.TrimSpace(line))
	}
	return got
}

// TestKernelIPv6: the ip6 table loads, and a partial sync and a full one
// replace it, next to an ip table of the same name.
func TestKernelIPv6(t *testing.T) {
	requireRoot(t)
	n := newTestNetns(t)
	ctx := context.Background()
	b6, err := nftables.New(nftables.Config{Family: proxy.IPv6, MasqueradeBit: nftables.DefaultMasqueradeBit, NetNS: int(n.NS)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b6.Close)
	b4, err := nftables.New(nftables.Config{Family: proxy.IPv4, MasqueradeBit: nftables.DefaultMasqueradeBit, NetNS: int(n.NS)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b4.Close)
	ep := func(s string) proxy.Endpoint {
		return proxy.Endpoint{IP: netip.MustParseAddr(s), Port: 8080, Ready: true, Serving: true}
	}
	st := &proxy.State{Family: proxy.IPv6, ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("fd00:10:244::/48")},
		Services: []proxy.ServicePort{{
			Name:     proxy.ServicePortName{Namespace: "default", Name: "web6", Protocol: proxy.TCP},
			Protocol: proxy.TCP, ClusterIPs: []netip.Addr{netip.MustParseAddr("fd00:10:96::10")}, Port: 80, NodePort: 30080,
			ClusterEndpoints: []proxy.Endpoint{ep("fd00:10:244:1::2"), ep("fd00:10:244:2::2")}, AffinityTimeout: time.Minute,
		}}}
	st.Services[0].ExternalEndpoints = st.Services[0].ClusterEndpoints
	if _, err := b6.Sync(ctx, st, nil); err != nil {
		t.Fatalf("IPv6 full Sync: %v", err)
	}
	if _, err := b4.Sync(ctx, &proxy.State{Family: proxy.IPv4}, nil); err != nil {
		t.Fatalf("IPv4 full Sync: %v", err)
	}
	st.Services[0].ClusterEndpoints = st.Services[0].ClusterEndpoints[:1]
	if _, err := b6.Sync(ctx, st, map[string]bool{st.Services[0].Name.Key(): true}); err != nil {
		t.Fatalf("IPv6 partial Sync: %v", err)
	}
	if _, err := b6.Sync(ctx, st, nil); err != nil {
		t.Fatalf("IPv6 second full Sync: %v", err)
	}
	// nft itself can read everything back (it aborts on expressions it
	// cannot print: this listing has affinity, hairpin, the endpoint maps).
	var out []byte
	n.Do(func() { out, err = exec.Command("nft", "list", "ruleset").CombinedOutput() })
	if err != nil {
		t.Fatalf("nft list ruleset: %v: %s", err, out)
	}
	n.Do(func() { out, err = exec.Command("nft", "list", "tables").CombinedOutput() })
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	if got, want := strings.Fields(string(out)), []string{"table", "ip", "berth", "table", "ip6", "berth"}; !cmp.Equal(got, want) {
		t.Errorf("tables: %q, want %q", got, want)
	}
}

// TestKernelRoundRobinConcurrent: 30 connections opened at once (from as
// many goroutines, on every CPU) still land exactly 10 on each endpoint:
// the kernel's numgen counter is one per rule, advanced atomically.
func TestKernelRoundRobinConcurrent(t *testing.T) {
	tp := newTopology(t)
	if _, err := tp.backend.Sync(context.Background(), tp.state(tp.eps...), nil); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	// A socket belongs to the namespace it was created in: create them
	// on the client's thread, connect them from anywhere.
	const n = 30
	fds := make([]int, n)
	var err error
	tp.client.Do(func() {
		for i := range fds {
			if fds[i], err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	answers := make(chan string, n)
	errs := make(chan error, n)
	start := make(chan struct{})
	for _, fd := range fds {
		go func() {
			f := os.NewFile(uintptr(fd), "client")
			defer f.Close()
			<-start
			sa := &unix.SockaddrInet4{Port: 80, Addr: trafficVIP.As4()}
			if err := unix.Connect(fd, sa); err != nil {
				errs <- fmt.Errorf("connect: %w", err)
				return
			}
			c, err := net.FileConn(f)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
				errs <- err
				return
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				errs <- err
				return
			}
			answers <- strings.Fields(line)[0]
		}()
	}
	close(start)
	count := map[string]int{}
	for range n {
		select {
		case a := <-answers:
			count[a]++
		case err := <-errs:
			t.Fatal(err)
		}
	}
	if want := map[string]int{"ep1": 10, "ep2": 10, "ep3": 10}; !cmp.Equal(count, want) {
		t.Errorf("30 concurrent connections: %v, want %v", count, want)
	}
}

// TestKernelRoundRobinIPv6: the ip6 table balances too: 9 connections to
// an IPv6 cluster IP with 3 endpoints land 3 on each, in turn.
func TestKernelRoundRobinIPv6(t *testing.T) {
	requireRoot(t)
	node, client := newTestNetns(t), newTestNetns(t)
	clientNet := netip.MustParsePrefix("fd00:100::/64")
	if err := link(node, client, "cl", clientNet); err != nil {
		t.Fatal(err)
	}
	if err := defaultRoute(client, clientNet.Addr().Next()); err != nil {
		t.Fatal(err)
	}
	var eps []proxy.Endpoint
	for i := 1; i <= 3; i++ {
		ns := newTestNetns(t)
		p := netip.MustParsePrefix(fmt.Sprintf("fd00:10:244:%d::/64", i))
		if err := link(node, ns, fmt.Sprintf("ep%d", i), p); err != nil {
			t.Fatal(err)
		}
		if err := defaultRoute(ns, p.Addr().Next()); err != nil {
			t.Fatal(err)
		}
		addr := p.Addr().Next().Next()
		serveEcho(t, ns, fmt.Sprintf("ep%d", i), addr)
		eps = append(eps, proxy.Endpoint{IP: addr, Port: 8080, Ready: true, Serving: true})
	}
	if err := sysctl(node, "net/ipv6/conf/all/forwarding", "1"); err != nil {
		t.Fatal(err)
	}
	b, err := nftables.New(nftables.Config{Family: proxy.IPv6, MasqueradeBit: nftables.DefaultMasqueradeBit, NetNS: int(node.NS)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	vip := netip.MustParseAddr("fd00:10:96::100")
	st := &proxy.State{Family: proxy.IPv6, ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("fd00:10:244::/48")},
		Services: []proxy.ServicePort{{
			Name:     proxy.ServicePortName{Namespace: "default", Name: "echo6", Protocol: proxy.TCP},
			Protocol: proxy.TCP, ClusterIPs: []netip.Addr{vip}, Port: 80, ClusterEndpoints: eps,
		}}}
	if _, err := b.Sync(context.Background(), st, nil); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got := dialMany(t, client, netip.AddrPortFrom(vip, 80), 9)
	var wantGot []string
	for k := range 9 {
		i := k%3 + 1
		// Masqueraded: the node's address on the endpoint's link.
		wantGot = append(wantGot, fmt.Sprintf("ep%d %s", i, netip.MustParsePrefix(fmt.Sprintf("fd00:10:244:%d::/64", i)).Addr().Next()))
	}
	if diff := cmp.Diff(wantGot, got); diff != "" {
		t.Errorf("IPv6 connections to the cluster IP (-want +got):\n%s", diff)
	}
}
