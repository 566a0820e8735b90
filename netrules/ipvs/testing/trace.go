package testing

import (
	"net/netip"
	"strconv"
	"strings"

	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/ipvs"
	"github.com/berthnode/berth/netrules/xtables"
)

// TraceResult is what happened to a traced packet.
type TraceResult struct {
	// Verdict is the fate of the packet: ACCEPT when it reached a real
	// server, DROP or REJECT (by iptables, or by IPVS when no destination
	// takes new connections).
	Verdict iptablestesting.Verdict
	// Real is the real server IPVS chose; zero when none.
	Real netip.AddrPort
	// Masquerade tells that the packet leaves with the node's address as
	// its source (masquerade mark, or hairpin).
	Masquerade bool
	// Matched are the iptables rules the packet matched, in order.
	Matched []string
}

// Trace walks a new connection's first packet through the node as the
// kernel would: nat PREROUTING (OUTPUT for FromLocal) and filter INPUT in
// the fake iptables, then IPVS (Connect on the fake table) when a virtual
// service has the destination, then nat POSTROUTING's masquerade: the
// mark set on the way in, or the hairpin rule of the real server.
func (n *Node) Trace(pkt iptablestesting.Packet) TraceResult {
	pkt.New = true
	r := n.IPTables.Trace(pkt)
	res := TraceResult{Verdict: r.Verdict, Matched: r.Matched, Masquerade: r.Masquerade}
	if r.Verdict != iptablestesting.Accept || r.DNAT.IsValid() {
		return res
	}
	key := ipvs.ServiceKey{Addr: pkt.Dst, Port: pkt.DPort, Protocol: pkt.Proto}
	if _, ok := n.IPVS.Service(key); !ok {
		return res
	}
	real, ok := n.IPVS.Connect(key, pkt.Src)
	if !ok {
		res.Verdict = iptablestesting.Reject
		return res
	}
	res.Real = real
	for _, m := range r.Matched {
		if strings.HasPrefix(m, "nat "+ipvs.ChainMarkMasq+": ") && strings.Contains(m, "MARK") {
			res.Masquerade = true
		}
	}
	res.Masquerade = res.Masquerade || n.hairpin(pkt, real)
	return res
}

// hairpin tells whether nat BERTH-IPVS-POSTROUTING masquerades pkt once
// IPVS sent it to real: its hairpin rule for real, from real itself.
func (n *Node) hairpin(pkt iptablestesting.Packet, real netip.AddrPort) bool {
	if pkt.Src != real.Addr() {
		return false
	}
	bits := "/32"
	if real.Addr().Is6() {
		bits = "/128"
	}
	host := real.Addr().String() + bits
	proto := strings.ToLower(string(pkt.Proto))
	rules := xtables.ParseRuleset(n.IPTables.Save(n.Family, xtables.TableNAT))
	for _, rule := range rules.Rules(xtables.TableNAT, ipvs.ChainPostrouting) {
		args, err := xtables.Split(rule)
		if err != nil {
			continue
		}
		o := xtables.Options(args)
		if o["-s"] == host && o["-d"] == host && o["-p"] == proto && o["--dport"] == itoa(real.Port()) && o["-j"] == "MASQUERADE" {
			return true
		}
	}
	return false
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }
