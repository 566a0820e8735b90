package ipvs_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	ipt "github.com/berthnode/berth/netrules/iptables/testing"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/proxy"
)

// TestTrace walks packets through the fake iptables and the fake IPVS
// after a sync of the example state, and checks where they land.
func TestTrace(t *testing.T) {
	families(t, func(t *testing.T, f proxy.Family) {
		n := newNode(t, f)
		ipvstesting.SyncOK(t, newBackend(t, n), ipt.ExampleState(f), nil)
		pod, remotePod := ipt.PodIP(f, 1, 99), ipt.PodIP(f, 2, 99)
		client, stranger := ipt.ExternalIP(f, 100), ipt.OtherNodeIP(f)
		ep := func(node, i int, port uint16) netip.AddrPort { return netip.AddrPortFrom(ipt.PodIP(f, node, i), port) }
		any := netip.AddrPort{}
		for _, tc := range []struct {
			name       string
			src, dst   netip.Addr
			proto      proxy.Protocol
			dport      uint16
			verdict    ipt.Verdict
			real       []netip.AddrPort // one of these; any: whichever
			masquerade bool
		}{
			{name: "hairpin: an endpoint reaching itself", src: ipt.PodIP(f, 1, 2), dst: ipt.ServiceIP(f, 10), dport: 80,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(1, 2, 8080)}, masquerade: true},
			{name: "pod to cluster IP", src: pod, dst: ipt.ServiceIP(f, 10), dport: 80,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(2, 2, 8080)}},
			{name: "off-cluster to cluster IP is masqueraded", src: client, dst: ipt.ServiceIP(f, 10), dport: 80,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(3, 2, 8080)}, masquerade: true},
			{name: "UDP cluster IP", src: pod, dst: ipt.ServiceIP(f, 53), proto: proxy.UDP, dport: 53,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(1, 4, 53)}},
			{name: "SCTP cluster IP", src: remotePod, dst: ipt.ServiceIP(f, 17), proto: proxy.SCTP, dport: 9999,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(2, 9, 9999)}},
			{name: "node port from outside is masqueraded", src: client, dst: ipt.NodeIP(f), dport: 30080,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(1, 2, 8080), ep(2, 2, 8080), ep(3, 2, 8080)}, masquerade: true},
			{name: "no endpoints: cluster IP rejected", src: pod, dst: ipt.ServiceIP(f, 12), dport: 80, verdict: ipt.Reject},
			{name: "no endpoints: external IP rejected", src: client, dst: ipt.ExternalIP(f, 5), dport: 80, verdict: ipt.Reject},
			{name: "no endpoints: node port rejected", src: client, dst: ipt.NodeIP(f), dport: 30081, verdict: ipt.Reject},
			{name: "eTP Local: allowed source keeps its address", src: client, dst: ipt.LoadBalancerIP(f, 10), dport: 80,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(1, 5, 8080)}},
			{name: "eTP Local: source outside loadBalancerSourceRanges dropped", src: stranger, dst: ipt.LoadBalancerIP(f, 10), dport: 80,
				verdict: ipt.Drop},
			{name: "eTP Local node port keeps the client address", src: client, dst: ipt.NodeIP(f), dport: 30082,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(1, 5, 8080)}},
			{name: "eTP Local without local endpoint: outsiders dropped", src: client, dst: ipt.NodeIP(f), dport: 30083, verdict: ipt.Drop},
			{name: "eTP Local without local endpoint: pods use the cluster endpoints", src: pod, dst: ipt.NodeIP(f), dport: 30083,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(2, 6, 8080)}},
			{name: "load-balancer source range holding the node network", src: stranger, dst: ipt.LoadBalancerIP(f, 11), dport: 443,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(2, 8, 8443), ep(3, 8, 8443)}, masquerade: true},
			{name: "external IP, eTP Cluster, masqueraded", src: client, dst: ipt.ExternalIP(f, 6), dport: 443,
				verdict: ipt.Accept, real: []netip.AddrPort{ep(2, 8, 8443), ep(3, 8, 8443)}, masquerade: true},
			{name: "a service address on another port is closed", src: client, dst: ipt.ServiceIP(f, 10), dport: 22, verdict: ipt.Reject},
			{name: "not a service: left alone", src: client, dst: ipt.NodeIP(f), dport: 22, verdict: ipt.Accept, real: []netip.AddrPort{any}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.proto == "" {
					tc.proto = proxy.TCP
				}
				r := n.Trace(ipt.Packet{Src: tc.src, Dst: tc.dst, Proto: tc.proto, SPort: 40000, DPort: tc.dport})
				if r.Verdict != tc.verdict {
					t.Fatalf("verdict %s, want %s; matched:\n%s", r.Verdict, tc.verdict, lines(r.Matched))
				}
				if tc.verdict != ipt.Accept {
					return
				}
				if !slices.Contains(tc.real, r.Real) {
					t.Errorf("real server %v, want one of %v", r.Real, tc.real)
				}
				if r.Masquerade != tc.masquerade {
					t.Errorf("masquerade %v, want %v; matched:\n%s", r.Masquerade, tc.masquerade, lines(r.Matched))
				}
			})
		}
	})
}

func TestTraceAffinity(t *testing.T) {
	n := newNode(t, proxy.IPv4)
	ipvstesting.SyncOK(t, newBackend(t, n), ipt.ExampleState(proxy.IPv4), nil)
	pkt := ipt.Packet{Src: ipt.PodIP(proxy.IPv4, 2, 50), Dst: ipt.ServiceIP(proxy.IPv4, 11), Proto: proxy.TCP, SPort: 1, DPort: 80}
	first := n.Trace(pkt).Real
	for i := range 5 {
		pkt.SPort = uint16(2 + i)
		if got := n.Trace(pkt).Real; got != first {
			t.Fatalf("connection %d of the same client went to %v, first to %v", i+2, got, first)
		}
	}
	other := pkt
	other.Src = ipt.PodIP(proxy.IPv4, 2, 51)
	if got := n.Trace(other).Real; got == first {
		t.Errorf("another client took the first one's server %v rather than the next in turn", got)
	}
}

func lines(ss []string) string {
	var out string
	for _, s := range ss {
		out += fmt.Sprintf("  %s\n", s)
	}
	return out
}
