package iptables_test

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/netrules/iptables"
	ipt "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/proxy"
)

// node is a fake node: the backend syncing into a fake iptables, whose
// tracer tells what happens to packets.
type node struct {
	t       *testing.T
	family  proxy.Family
	fake    *ipt.Fake
	backend *iptables.Backend
	clock   *testingclock.FakeClock
	ctx     context.Context
}

func newNode(t *testing.T, f proxy.Family, legacy bool) *node {
	t.Helper()
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fake := ipt.NewFake(ipt.FakeConfig{Legacy: legacy, Clock: clk, LocalAddrs: []netip.Addr{ipt.NodeIP(f)}})
	b, err := iptables.New(iptables.Config{
		Family: f, MasqueradeBit: iptables.DefaultMasqueradeBit, Exec: fake, Hooks: fake.Hooks(f), Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &node{t: t, family: f, fake: fake, backend: b, clock: clk, ctx: ktestingCtx(t)}
}

func (n *node) sync(s *proxy.State, changed map[string]bool) {
	n.t.Helper()
	if _, err := n.backend.Sync(n.ctx, s, changed); err != nil {
		n.t.Fatalf("Sync: %v", err)
	}
}

// ktestingCtx returns a context whose logger writes to the test's log.
func ktestingCtx(t *testing.T) context.Context {
	_, ctx := ktesting.NewTestContext(t)
	return ctx
}

// outcome is the part of a trace the behaviour tests assert.
type outcome struct {
	Verdict    ipt.Verdict
	DNAT       netip.AddrPort
	Masquerade bool
}

func (n *node) trace(p ipt.Packet) outcome {
	n.t.Helper()
	res := n.fake.Trace(p)
	if res.Err != nil {
		n.t.Fatalf("Trace(%+v): %v", p, res.Err)
	}
	return outcome{Verdict: res.Verdict, DNAT: res.DNAT, Masquerade: res.Masquerade}
}

// The clients of the behaviour tests.
func podOnNode(f proxy.Family) netip.Addr     { return ipt.PodIP(f, 1, 99) }
func outsideClient(f proxy.Family) netip.Addr { return ipt.ExternalIP(f, 50) }
func strangerClient(f proxy.Family) netip.Addr {
	if f == proxy.IPv6 {
		return netip.MustParseAddr("2001:db8:999::1")
	}
	return netip.MustParseAddr("192.0.2.99")
}

func lands(f proxy.Family, node, pod int, port uint16, masq bool) outcome {
	return outcome{Verdict: ipt.Accept, DNAT: netip.AddrPortFrom(ipt.PodIP(f, node, pod), port), Masquerade: masq}
}

func TestTraceServices(t *testing.T) {
	for _, f := range []proxy.Family{proxy.IPv4, proxy.IPv6} {
		t.Run("IPv"+strconv.Itoa(int(f)), func(t *testing.T) { testTraceServices(t, f) })
	}
}

func testTraceServices(t *testing.T, f proxy.Family) {
	vip := func(n int) netip.Addr { return ipt.ServiceIP(f, n) }
	nodeIP, pod, outside, stranger := ipt.NodeIP(f), podOnNode(f), outsideClient(f), strangerClient(f)
	tcp := func(src, dst netip.Addr, port uint16) ipt.Packet {
		return ipt.Packet{Src: src, Dst: dst, Proto: proxy.TCP, SPort: 40000, DPort: port, New: true}
	}
	local := func(p ipt.Packet) ipt.Packet { p.FromLocal = true; return p }
	notNew := func(p ipt.Packet) ipt.Packet { p.New = false; return p }
	accepted := outcome{Verdict: ipt.Accept}
	// Each case runs on freshly synced rules, so every round robin starts
	// at the first endpoint.
	cases := []struct {
		name string
		pkt  ipt.Packet
		want outcome
	}{
		{"cluster IP from a pod", tcp(pod, vip(10), 80), lands(f, 1, 2, 8080, false)},
		{"cluster IP from outside the cluster is masqueraded", tcp(outside, vip(10), 80), lands(f, 1, 2, 8080, true)},
		{"cluster IP from the node is masqueraded", local(tcp(nodeIP, vip(10), 80)), lands(f, 1, 2, 8080, true)},
		{"hairpin: an endpoint reaching itself is masqueraded", tcp(ipt.PodIP(f, 1, 2), vip(10), 80), lands(f, 1, 2, 8080, true)},
		{"other port of a cluster IP is left alone", tcp(pod, vip(10), 81), accepted},
		{"established connection is left to conntrack", notNew(tcp(pod, vip(12), 80)), accepted},
		{"UDP cluster IP", ipt.Packet{Src: pod, Dst: vip(53), Proto: proxy.UDP, DPort: 53, New: true}, lands(f, 1, 4, 53, false)},
		{"SCTP cluster IP", ipt.Packet{Src: pod, Dst: vip(17), Proto: proxy.SCTP, DPort: 9999, New: true}, lands(f, 2, 9, 9999, false)},
		{"node port from outside is masqueraded", tcp(outside, nodeIP, 30080), lands(f, 1, 2, 8080, true)},
		{"node port from the node", local(tcp(nodeIP, nodeIP, 30080)), lands(f, 1, 2, 8080, true)},
		{"node port on a loopback address is not served", local(tcp(loopback(f), loopback(f), 30080)), accepted},
		{"no endpoints: cluster IP from a pod is rejected", tcp(pod, vip(12), 80), outcome{Verdict: ipt.Reject}},
		{"no endpoints: cluster IP from the node is rejected", local(tcp(nodeIP, vip(12), 80)), outcome{Verdict: ipt.Reject}},
		{"no endpoints: external IP is rejected", tcp(outside, ipt.ExternalIP(f, 5), 80), outcome{Verdict: ipt.Reject}},
		{"no endpoints: node port is rejected", tcp(outside, nodeIP, 30081), outcome{Verdict: ipt.Reject}},
		{"eTP Local: load balancer keeps the client address", tcp(outside, ipt.LoadBalancerIP(f, 10), 80), lands(f, 1, 5, 8080, false)},
		{"eTP Local: node port keeps the client address", tcp(outside, nodeIP, 30082), lands(f, 1, 5, 8080, false)},
		{"eTP Local: source outside the ranges is dropped", tcp(stranger, ipt.LoadBalancerIP(f, 10), 80), outcome{Verdict: ipt.Drop}},
		{"eTP Local: cluster IP uses every endpoint", tcp(pod, vip(13), 80), lands(f, 1, 5, 8080, false)},
		{"eTP Local: health check node port is accepted", tcp(outside, nodeIP, 32000), accepted},
		{"eTP Local without local endpoint: outside traffic is dropped", tcp(outside, nodeIP, 30083), outcome{Verdict: ipt.Drop}},
		{"eTP Local without local endpoint: a pod goes to the cluster endpoints", tcp(pod, nodeIP, 30083), lands(f, 2, 6, 8080, false)},
		{"eTP Local without local endpoint: the node goes there masqueraded", local(tcp(nodeIP, nodeIP, 30083)), lands(f, 2, 6, 8080, true)},
		{"iTP Local: cluster IP only reaches the local endpoint", tcp(pod, vip(15), 80), lands(f, 1, 7, 8080, false)},
		{"iTP Local: node port uses the external endpoints", tcp(outside, nodeIP, 30084), lands(f, 1, 7, 8080, true)},
		{"source ranges: allowed client", tcp(outside, ipt.LoadBalancerIP(f, 11), 443), lands(f, 2, 8, 8443, true)},
		{"source ranges: other client is dropped", tcp(stranger, ipt.LoadBalancerIP(f, 11), 443), outcome{Verdict: ipt.Drop}},
		{"source ranges: the node itself (its network is allowed)", local(tcp(nodeIP, ipt.LoadBalancerIP(f, 11), 443)), lands(f, 2, 8, 8443, true)},
		{"source ranges: another node", tcp(ipt.OtherNodeIP(f), ipt.LoadBalancerIP(f, 11), 443), lands(f, 2, 8, 8443, true)},
		{"external IP from anyone", tcp(stranger, ipt.ExternalIP(f, 6), 443), lands(f, 2, 8, 8443, true)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, f, false)
			n.sync(ipt.ExampleState(f), nil)
			if got := n.trace(tc.pkt); got != tc.want {
				t.Errorf("Trace(%+v) = %+v, want %+v\nmatched: %q", tc.pkt, got, tc.want, n.fake.Trace(tc.pkt).Matched)
			}
		})
	}
}

func loopback(f proxy.Family) netip.Addr {
	if f == proxy.IPv6 {
		return netip.IPv6Loopback()
	}
	return netip.MustParseAddr("127.0.0.1")
}

// TestTraceRoundRobin: new connections to a service port go to its
// endpoints in turn, whatever the clients, and whichever of the service's
// destinations they use.
func TestTraceRoundRobin(t *testing.T) {
	f := proxy.IPv4
	n := newNode(t, f, false)
	n.sync(ipt.ExampleState(f), nil)
	eps := []netip.AddrPort{
		netip.AddrPortFrom(ipt.PodIP(f, 1, 2), 8080),
		netip.AddrPortFrom(ipt.PodIP(f, 2, 2), 8080),
		netip.AddrPortFrom(ipt.PodIP(f, 3, 2), 8080),
	}
	var want, got []netip.AddrPort
	counts := map[netip.AddrPort]int{}
	for k := range 30 {
		pkt := ipt.Packet{Src: ipt.PodIP(f, 1+k%3, 100+k), Dst: ipt.ServiceIP(f, 10), Proto: proxy.TCP, DPort: 80, New: true}
		if k%5 == 4 {
			pkt.Src, pkt.Dst, pkt.DPort = outsideClient(f), ipt.NodeIP(f), 30080
		}
		want = append(want, eps[k%3])
		dst := n.trace(pkt).DNAT
		got = append(got, dst)
		counts[dst]++
		// Packets of established connections do not move the counters.
		pkt.New = false
		n.trace(pkt)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("endpoints of 30 new connections (-want +got):\n%s", diff)
	}
	for _, ep := range eps {
		if counts[ep] != 10 {
			t.Errorf("endpoint %s got %d of 30 connections, want 10", ep, counts[ep])
		}
	}
}

// TestTraceRoundRobinCounters: the round robin of a service whose rules a
// sync leaves alone goes on; one whose rules a sync rewrites starts again
// at its first endpoint. With iptables-legacy every restore rewrites the
// whole nat table, so every round robin starts again.
func TestTraceRoundRobinCounters(t *testing.T) {
	f := proxy.IPv4
	web := ipt.Name("default/web:http", proxy.TCP).Key()
	lb := ipt.Name("default/lb", proxy.TCP).Key()
	toWeb := ipt.Packet{Src: podOnNode(f), Dst: ipt.ServiceIP(f, 10), Proto: proxy.TCP, DPort: 80, New: true}
	webEP := func(node int) netip.AddrPort { return netip.AddrPortFrom(ipt.PodIP(f, node, 2), 8080) }
	for _, tc := range []struct {
		name    string
		legacy  bool
		changed map[string]bool
		want    netip.AddrPort
	}{
		{"other service changed: web goes on", false, map[string]bool{lb: true}, webEP(2)},
		{"web changed: web starts again", false, map[string]bool{web: true}, webEP(1)},
		{"full sync: every service starts again", false, nil, webEP(1)},
		{"legacy, other service changed: web starts again", true, map[string]bool{lb: true}, webEP(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, f, tc.legacy)
			s := ipt.ExampleState(f)
			n.sync(s, nil)
			if got := n.trace(toWeb).DNAT; got != webEP(1) {
				t.Fatalf("first connection went to %s, want %s", got, webEP(1))
			}
			n.sync(s, tc.changed)
			if got := n.trace(toWeb).DNAT; got != tc.want {
				t.Errorf("connection after the sync went to %s, want %s", got, tc.want)
			}
		})
	}
}

// TestTraceAffinity: with ClientIP affinity a client keeps its endpoint
// until it has made no new connection for the timeout.
func TestTraceAffinity(t *testing.T) {
	f := proxy.IPv4
	n := newNode(t, f, false)
	n.sync(ipt.ExampleState(f), nil)
	ep := func(node int) netip.AddrPort { return netip.AddrPortFrom(ipt.PodIP(f, node, 3), 80) }
	conn := func(client int) netip.AddrPort {
		return n.trace(ipt.Packet{Src: ipt.ExternalIP(f, client), Dst: ipt.ServiceIP(f, 11), Proto: proxy.TCP, DPort: 80, New: true}).DNAT
	}
	steps := []struct {
		advance time.Duration
		client  int
		want    netip.AddrPort
	}{
		{0, 1, ep(1)},
		{time.Hour, 1, ep(1)},
		{0, 2, ep(2)},
		{0, 3, ep(1)},
		{2 * time.Hour, 1, ep(1)}, // 2h since client 1's last connection
		{3*time.Hour + time.Second, 1, ep(2)},
		{0, 1, ep(2)},
	}
	for i, s := range steps {
		n.clock.Step(s.advance)
		if got := conn(s.client); got != s.want {
			t.Errorf("step %d: client %d went to %s, want %s", i, s.client, got, s.want)
		}
	}
}

// TestTraceMasqueradeOptions: which cluster-IP traffic is masqueraded with
// several cluster CIDRs, and with MasqueradeAll.
func TestTraceMasqueradeOptions(t *testing.T) {
	f := proxy.IPv4
	second := netip.MustParsePrefix("10.128.0.0/16")
	toWeb := func(src netip.Addr) ipt.Packet {
		return ipt.Packet{Src: src, Dst: ipt.ServiceIP(f, 10), Proto: proxy.TCP, DPort: 80, New: true}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*proxy.State)
		src    netip.Addr
		masq   bool
	}{
		{"two CIDRs: pod of the first", func(s *proxy.State) { s.ClusterCIDRs = append(s.ClusterCIDRs, second) }, podOnNode(f), false},
		{"two CIDRs: pod of the second", func(s *proxy.State) { s.ClusterCIDRs = append(s.ClusterCIDRs, second) }, second.Addr().Next(), false},
		{"two CIDRs: outside", func(s *proxy.State) { s.ClusterCIDRs = append(s.ClusterCIDRs, second) }, outsideClient(f), true},
		{"masquerade all: pod", func(s *proxy.State) { s.MasqueradeAll = true }, podOnNode(f), true},
		{"no detect-local: outside", func(s *proxy.State) { s.ClusterCIDRs = nil }, outsideClient(f), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, f, false)
			s := ipt.ExampleState(f)
			tc.mutate(s)
			n.sync(s, nil)
			if got, want := n.trace(toWeb(tc.src)), lands(f, 1, 2, 8080, tc.masq); got != want {
				t.Errorf("from %s: %+v, want %+v", tc.src, got, want)
			}
		})
	}
}
