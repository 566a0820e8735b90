package iptables_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/netrules/iptables"
	ipt "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
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
	fake := ipt.NewFake(ipt.FakeConfig{Legacy: legacy, Clock: clk, LocalAddrs: []netip.Addr{proxytest.NodeIP(f)}})
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

// fakeTracer is the iptables backend on a fake iptables, traced by the
// fake's packet tracer.
type fakeTracer struct{ n *node }

func (tr fakeTracer) Sync(s *proxy.State) error {
	_, err := tr.n.backend.Sync(tr.n.ctx, s, nil)
	return err
}

func (tr fakeTracer) Trace(p proxytest.Packet) (proxytest.Outcome, error) {
	return tr.n.fake.Trace(ipt.FirstPacket(p)).Outcome()
}

// TestBehaviour plays the proxy's behaviour table against the backend on
// the fake iptables.
func TestBehaviour(t *testing.T) {
	proxytest.Run(t, func(t *testing.T, f proxy.Family) proxytest.Tracer {
		return fakeTracer{newNode(t, f, false)}
	}, Except)
}

// Except lists the table's cases the iptables backend does not pass, with
// the reason; the kernel test uses it too.
var Except = proxytest.Except{
	"a cluster IP on a port no service uses is rejected": "iptables mode, as kube-proxy's, matches only the service ports " +
		"and routes the rest on unchanged; rejecting them needs a rule per cluster IP (IPVS and nftables have a set)",
}

// TestTraceEstablished: a packet of an established connection does not go
// through the nat table (conntrack replays the first packet's NAT), so the
// rules leave it alone, even to a service without endpoints.
func TestTraceEstablished(t *testing.T) {
	for _, f := range []proxy.Family{proxy.IPv4, proxy.IPv6} {
		n := newNode(t, f, false)
		n.sync(proxytest.ExampleState(f), nil)
		p := ipt.Packet{Src: proxytest.PodClient(f), Dst: proxytest.ServiceIP(f, 12), Proto: proxy.TCP, SPort: 40000, DPort: 80}
		if got, want := n.trace(p), (outcome{Verdict: ipt.Accept}); got != want {
			t.Errorf("IPv%d: Trace(%+v) = %+v, want %+v", f, p, got, want)
		}
	}
}

// TestTraceRoundRobin: new connections to a service port go to its
// endpoints in turn, whatever the clients, and whichever of the service's
// destinations they use.
func TestTraceRoundRobin(t *testing.T) {
	f := proxy.IPv4
	n := newNode(t, f, false)
	n.sync(proxytest.ExampleState(f), nil)
	eps := []netip.AddrPort{
		netip.AddrPortFrom(proxytest.PodIP(f, 1, 2), 8080),
		netip.AddrPortFrom(proxytest.PodIP(f, 2, 2), 8080),
		netip.AddrPortFrom(proxytest.PodIP(f, 3, 2), 8080),
	}
	var want, got []netip.AddrPort
	counts := map[netip.AddrPort]int{}
	for k := range 30 {
		pkt := ipt.Packet{Src: proxytest.PodIP(f, 1+k%3, 100+k), Dst: proxytest.ServiceIP(f, 10), Proto: proxy.TCP, DPort: 80, New: true}
		if k%5 == 4 {
			pkt.Src, pkt.Dst, pkt.DPort = proxytest.OutsideClient(f), proxytest.NodeIP(f), 30080
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
	web := proxytest.Name("default/web:http", proxy.TCP).Key()
	lb := proxytest.Name("default/lb", proxy.TCP).Key()
	toWeb := ipt.Packet{Src: proxytest.PodClient(f), Dst: proxytest.ServiceIP(f, 10), Proto: proxy.TCP, DPort: 80, New: true}
	webEP := func(node int) netip.AddrPort { return netip.AddrPortFrom(proxytest.PodIP(f, node, 2), 8080) }
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
			s := proxytest.ExampleState(f)
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
	n.sync(proxytest.ExampleState(f), nil)
	ep := func(node int) netip.AddrPort { return netip.AddrPortFrom(proxytest.PodIP(f, node, 3), 80) }
	conn := func(client int) netip.AddrPort {
		return n.trace(ipt.Packet{Src: proxytest.ExternalIP(f, client), Dst: proxytest.ServiceIP(f, 11), Proto: proxy.TCP, DPort: 80, New: true}).DNAT
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
