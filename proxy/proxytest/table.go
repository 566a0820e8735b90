package proxytest

import (
	"net/netip"

	"github.com/berthnode/berth/proxy"
)

// Packet is the first packet of a new connection, sent to the node.
type Packet struct {
	// Src and Dst are the packet's addresses.
	Src, Dst netip.Addr
	// Proto is the transport protocol.
	Proto proxy.Protocol
	// SPort and DPort are the transport ports.
	SPort, DPort uint16
	// FromLocal tells that a process of the node sends the packet, rather
	// than a pod or another host sending it to the node.
	FromLocal bool
}

// Verdict is whether a packet goes on.
type Verdict string

// The verdicts.
const (
	// Accepted: the packet goes on, to an endpoint when the outcome names
	// one, else to its own destination, unchanged.
	Accepted Verdict = "accepted"
	// Dropped: the packet is discarded without an answer.
	Dropped Verdict = "dropped"
	// Rejected: the packet is discarded and the client told so (ICMP
	// unreachable or TCP reset).
	Rejected Verdict = "rejected"
)

// Outcome is what a backend did with one packet.
type Outcome struct {
	// Verdict is whether the packet went on.
	Verdict Verdict
	// Endpoint is where the packet was sent; zero when its destination
	// was not rewritten.
	Endpoint netip.AddrPort
	// Masquerade tells that the packet reaches the endpoint with the
	// node's address as its source.
	Masquerade bool
	// Trail is the tracer's account of the packet's way (rules matched,
	// virtual services hit), shown when a case fails; never compared.
	Trail []string
}

// Spread is how a case's new connections spread over its endpoints.
type Spread int

// The spreads.
const (
	// One: a single connection, to one of the endpoints.
	One Spread = iota
	// RoundRobin: new connections from one client go to every endpoint in
	// turn; with k endpoints, 2k connections land on each twice, the
	// (i+k)th where the ith did.
	RoundRobin
	// Sticky (ClientIP affinity): a client keeps its endpoint over several
	// connections, and new clients go to the endpoints in turn.
	Sticky
)

// Want is the outcome a case must have.
type Want struct {
	// Verdict is the packets' fate.
	Verdict Verdict
	// Endpoints are where the connections may go; empty when their
	// destination must not be rewritten.
	Endpoints []netip.AddrPort
	// Spread is how several connections spread over Endpoints.
	Spread Spread
	// Masquerade tells that the connections reach their endpoints from
	// the node's address.
	Masquerade bool
	// Hairpin tells that a connection which lands on its own client is
	// masqueraded (whatever Masquerade says), so that the endpoint's
	// answer comes back through the node.
	Hairpin bool
}

// Case is one line of the table.
type Case struct {
	// Name says what the case shows; Except refers to it.
	Name string
	// State changes ExampleState before the sync; nil keeps it.
	State func(*proxy.State)
	// Packet is the first packet of the connection; RoundRobin and Sticky
	// send more like it (other source ports; Sticky, other clients too).
	Packet Packet
	// Want is what must happen.
	Want Want
}

// The clients of the table, besides the example network's addresses.

// PodClient is a pod on this node that is no endpoint: 10.244.1.99
// (fd00:10:244:1::99).
func PodClient(f proxy.Family) netip.Addr { return PodIP(f, 1, 99) }

// OutsideClient is a client outside the cluster, within the example
// load-balancer source ranges: 203.0.113.50 (2001:db8:113::50).
func OutsideClient(f proxy.Family) netip.Addr { return ExternalIP(f, 50) }

// StrangerClient is a client outside the cluster and outside every source
// range: 192.0.2.99 (2001:db8:999::1).
func StrangerClient(f proxy.Family) netip.Addr { return pick(f, "192.0.2.99", "2001:db8:999::1") }

// Loopback is the family's loopback address.
func Loopback(f proxy.Family) netip.Addr { return pick(f, "127.0.0.1", "::1") }

// SecondClusterCIDR is a second pods' range some cases add:
// 10.128.0.0/16 (fd00:10:128::/48).
func SecondClusterCIDR(f proxy.Family) netip.Prefix {
	return pickPrefix(f, "10.128.0.0/16", "fd00:10:128::/48")
}

// Cases is the table for a family, over ExampleState.
func Cases(f proxy.Family) []Case {
	return append(serviceCases(f), stateCases(f)...)
}

// tcp is a TCP packet from src to dst:port.
func tcp(src, dst netip.Addr, port uint16) Packet {
	return Packet{Src: src, Dst: dst, Proto: proxy.TCP, SPort: 40000, DPort: port}
}

// local is p sent by a process of the node.
func local(p Packet) Packet { p.FromLocal = true; return p }

// to wants connections spread over the endpoints (pod n on node, port).
func to(f proxy.Family, spread Spread, masq bool, port uint16, eps ...[2]int) Want {
	w := Want{Verdict: Accepted, Spread: spread, Masquerade: masq}
	for _, e := range eps {
		w.Endpoints = append(w.Endpoints, netip.AddrPortFrom(PodIP(f, e[0], e[1]), port))
	}
	return w
}

// ep is pod n on node.
func ep(node, n int) [2]int { return [2]int{node, n} }

func serviceCases(f proxy.Family) []Case {
	vip := func(n int) netip.Addr { return ServiceIP(f, n) }
	nodeIP, pod, outside, stranger := NodeIP(f), PodClient(f), OutsideClient(f), StrangerClient(f)
	web := []([2]int){ep(1, 2), ep(2, 2), ep(3, 2)}
	rr := func(masq bool, port uint16, eps ...[2]int) Want { return to(f, RoundRobin, masq, port, eps...) }
	dropped, rejected, accepted := Want{Verdict: Dropped}, Want{Verdict: Rejected}, Want{Verdict: Accepted}
	hairpin := rr(false, 8080, web...)
	hairpin.Hairpin = true
	sticky := to(f, Sticky, false, 80, ep(1, 3), ep(2, 3))
	return []Case{
		{Name: "cluster IP from a pod", Packet: tcp(pod, vip(10), 80), Want: rr(false, 8080, web...)},
		{Name: "cluster IP from outside the cluster is masqueraded", Packet: tcp(outside, vip(10), 80), Want: rr(true, 8080, web...)},
		{Name: "cluster IP from the node is masqueraded", Packet: local(tcp(nodeIP, vip(10), 80)), Want: rr(true, 8080, web...)},
		{Name: "hairpin: an endpoint landing on itself is masqueraded", Packet: tcp(PodIP(f, 1, 2), vip(10), 80), Want: hairpin},
		{Name: "a cluster IP on a port no service uses is rejected", Packet: tcp(pod, vip(10), 81), Want: rejected},
		{Name: "UDP cluster IP", Packet: Packet{Src: pod, Dst: vip(53), Proto: proxy.UDP, SPort: 40000, DPort: 53}, Want: rr(false, 53, ep(1, 4), ep(2, 4))},
		{Name: "SCTP cluster IP", Packet: Packet{Src: pod, Dst: vip(17), Proto: proxy.SCTP, SPort: 40000, DPort: 9999}, Want: rr(false, 9999, ep(2, 9))},
		{Name: "ClientIP affinity: a client keeps its endpoint", Packet: tcp(pod, vip(11), 80), Want: sticky},
		{Name: "node port from outside is masqueraded", Packet: tcp(outside, nodeIP, 30080), Want: rr(true, 8080, web...)},
		{Name: "node port from the node is masqueraded", Packet: local(tcp(nodeIP, nodeIP, 30080)), Want: rr(true, 8080, web...)},
		{Name: "node port on a loopback address is not served", Packet: local(tcp(Loopback(f), Loopback(f), 30080)), Want: accepted},
		{Name: "not a service: left alone", Packet: tcp(outside, nodeIP, 22), Want: accepted},
		{Name: "no endpoints: cluster IP from a pod is rejected", Packet: tcp(pod, vip(12), 80), Want: rejected},
		{Name: "no endpoints: cluster IP from the node is rejected", Packet: local(tcp(nodeIP, vip(12), 80)), Want: rejected},
		{Name: "no endpoints: external IP is rejected", Packet: tcp(outside, ExternalIP(f, 5), 80), Want: rejected},
		{Name: "no endpoints: node port is rejected", Packet: tcp(outside, nodeIP, 30081), Want: rejected},
		{Name: "eTP Local: load balancer keeps the client address", Packet: tcp(outside, LoadBalancerIP(f, 10), 80), Want: rr(false, 8080, ep(1, 5))},
		{Name: "eTP Local: node port keeps the client address", Packet: tcp(outside, nodeIP, 30082), Want: rr(false, 8080, ep(1, 5))},
		{Name: "eTP Local: source outside the ranges is dropped", Packet: tcp(stranger, LoadBalancerIP(f, 10), 80), Want: dropped},
		{Name: "eTP Local: cluster IP uses every endpoint", Packet: tcp(pod, vip(13), 80), Want: rr(false, 8080, ep(1, 5), ep(2, 5))},
		{Name: "eTP Local: health check node port reaches the node", Packet: tcp(outside, nodeIP, 32000), Want: accepted},
		{Name: "eTP Local without local endpoint: outside traffic is dropped", Packet: tcp(outside, nodeIP, 30083), Want: dropped},
		{Name: "eTP Local without local endpoint: a pod goes to the cluster endpoints", Packet: tcp(pod, nodeIP, 30083), Want: rr(false, 8080, ep(2, 6))},
		{Name: "eTP Local without local endpoint: the node goes there masqueraded", Packet: local(tcp(nodeIP, nodeIP, 30083)), Want: rr(true, 8080, ep(2, 6))},
		{Name: "iTP Local: cluster IP reaches only local endpoints", Packet: tcp(pod, vip(15), 80), Want: rr(false, 8080, ep(1, 7))},
		{Name: "iTP Local: node port uses the external endpoints", Packet: tcp(outside, nodeIP, 30084), Want: rr(true, 8080, ep(1, 7), ep(2, 7))},
		{Name: "source ranges: allowed client", Packet: tcp(outside, LoadBalancerIP(f, 11), 443), Want: rr(true, 8443, ep(2, 8), ep(3, 8))},
		{Name: "source ranges: other client is dropped", Packet: tcp(stranger, LoadBalancerIP(f, 11), 443), Want: dropped},
		{Name: "source ranges: the node itself (its network is allowed)", Packet: local(tcp(nodeIP, LoadBalancerIP(f, 11), 443)), Want: rr(true, 8443, ep(2, 8), ep(3, 8))},
		{Name: "source ranges: another node", Packet: tcp(OtherNodeIP(f), LoadBalancerIP(f, 11), 443), Want: rr(true, 8443, ep(2, 8), ep(3, 8))},
		{Name: "external IP from anyone", Packet: tcp(stranger, ExternalIP(f, 6), 443), Want: rr(true, 8443, ep(2, 8), ep(3, 8))},
	}
}

// stateCases change the example state's node-wide settings: which traffic
// to a cluster IP is masqueraded.
func stateCases(f proxy.Family) []Case {
	second := SecondClusterCIDR(f)
	twoCIDRs := func(s *proxy.State) { s.ClusterCIDRs = append(s.ClusterCIDRs, second) }
	toWeb := func(src netip.Addr) Packet { return tcp(src, ServiceIP(f, 10), 80) }
	web := func(masq bool) Want { return to(f, RoundRobin, masq, 8080, ep(1, 2), ep(2, 2), ep(3, 2)) }
	return []Case{
		{Name: "two cluster CIDRs: a pod of the first", State: twoCIDRs, Packet: toWeb(PodClient(f)), Want: web(false)},
		{Name: "two cluster CIDRs: a pod of the second", State: twoCIDRs, Packet: toWeb(second.Addr().Next()), Want: web(false)},
		{Name: "two cluster CIDRs: outside is masqueraded", State: twoCIDRs, Packet: toWeb(OutsideClient(f)), Want: web(true)},
		{Name: "masquerade all: a pod is masqueraded", State: func(s *proxy.State) { s.MasqueradeAll = true }, Packet: toWeb(PodClient(f)), Want: web(true)},
		{Name: "no local-traffic detector: outside is not masqueraded", State: func(s *proxy.State) { s.ClusterCIDRs = nil }, Packet: toWeb(OutsideClient(f)), Want: web(false)},
	}
}
