package testing

import (
	"net/netip"
	"strconv"
	"strings"

	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/ipvs"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy/proxytest"
)

// Trace walks a new connection's first packet through the node as the
// kernel would: nat PREROUTING (OUTPUT for FromLocal) and filter INPUT in
// the fake iptables, then IPVS (Connect on the fake table) when a virtual
// service has the destination, then nat POSTROUTING's masquerade: the
// mark set on the way in, or the hairpin rule of the real server. The
// outcome's Endpoint is the real server IPVS chose; its trail, the
// iptables rules matched and the virtual service.
func (n *Node) Trace(p proxytest.Packet) (proxytest.Outcome, error) {
	pkt := iptablestesting.FirstPacket(p)
	res, err := n.IPTables.Trace(pkt).Outcome()
	if err != nil || res.Verdict != proxytest.Accepted || res.Endpoint.IsValid() {
		return res, err
	}
	key := ipvs.ServiceKey{Addr: pkt.Dst, Port: pkt.DPort, Protocol: pkt.Proto}
	if _, ok := n.IPVS.Service(key); !ok {
		return res, nil
	}
	res.Trail = append(res.Trail, "ipvs "+key.String())
	real, ok := n.IPVS.Connect(key, pkt.Src)
	if !ok {
		// No destination takes new connections: IPVS answers with an
		// ICMP unreachable.
		res.Verdict = proxytest.Rejected
		return res, nil
	}
	res.Endpoint = real
	for _, m := range res.Trail {
		if strings.HasPrefix(m, "nat "+ipvs.ChainMarkMasq+": ") && strings.Contains(m, "MARK") {
			res.Masquerade = true
		}
	}
	res.Masquerade = res.Masquerade || n.hairpin(pkt, real)
	return res, nil
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
