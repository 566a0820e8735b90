package nftables

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables/expr"

	"github.com/berthnode/berth/proxy"
)

// ErrInvalidState is returned for a State that Compute never produces: an
// unknown family or protocol, a port 0, two service ports with one key.
var ErrInvalidState = errors.New("invalid proxy state")

// TableName is the name of berth's table in both families (ip berth, ip6
// berth).
const TableName = "berth"

// The table's fixed chains and maps.
const (
	chainNATPrerouting  = "nat-prerouting"
	chainNATOutput      = "nat-output"
	chainNATPostrouting = "nat-postrouting"
	chainFilterInput    = "filter-input"
	chainFilterForward  = "filter-forward"
	chainFilterOutput   = "filter-output"
	chainServices       = "services"
	chainNoEndpoints    = "no-endpoints"
	chainMarkMasq       = "mark-for-masquerade"
	chainMarkOffCluster = "mark-off-cluster"
	chainReject         = "reject"

	// mapServices sends address . protocol . port to a service port's
	// chain; mapNodePorts protocol . port on a local address.
	mapServices  = "service-ips"
	mapNodePorts = "service-nodeports"
	// mapNoEndpoints and mapNoEndpointNodePorts reject or drop new
	// connections to destinations without endpoints, in filter.
	mapNoEndpoints         = "no-endpoint-ips"
	mapNoEndpointNodePorts = "no-endpoint-nodeports"
)

// The per-service-port chain and map prefixes; the rest of a name is a
// hash of the port's key (and the endpoint) and a readable suffix.
const (
	prefixSVC = "svc-"
	prefixSVX = "svx-"
	prefixEXT = "ext-"
	prefixSEP = "sep-"
	prefixRR  = "rr-"
)

// Options are the settings of a backend that are not part of a State.
type Options struct {
	// MasqueradeBit is the packet-mark bit (0-31) that asks for masquerade.
	MasqueradeBit int
}

// elem is one element of a verdict map.
type elem struct {
	key  []byte
	text string
	v    *expr.Verdict
}

// chainDef is a regular chain and its rules.
type chainDef struct {
	name  string
	rules []rule
}

// rrMap is a service chain's round-robin map: numgen value to endpoint
// chain.
type rrMap struct {
	name  string
	elems []elem
}

// servicePlan is everything one service port puts in the table.
type servicePlan struct {
	key    string
	chains []chainDef
	rr     []rrMap
	// The elements of the shared maps, by map name.
	elems map[string][]elem
}

// rules counts the plan's rules.
func (p *servicePlan) rules() int {
	n := 0
	for _, c := range p.chains {
		n += len(c.rules)
	}
	return n
}

// globals are a State's node-wide settings.
type globals struct {
	f             *fam
	bit           uint32
	clusterCIDRs  []netip.Prefix
	masqueradeAll bool
	// nodePortDsts are the prefixes node ports answer on; nil: every local
	// address but loopback.
	nodePortDsts []netip.Prefix
}

func newGlobals(state *proxy.State, opts Options) (*globals, error) {
	if state == nil {
		return nil, fmt.Errorf("%w: nil state", ErrInvalidState)
	}
	f, err := newFam(state.Family)
	if err != nil {
		return nil, err
	}
	g := &globals{f: f, bit: uint32(1) << opts.MasqueradeBit, masqueradeAll: state.MasqueradeAll}
	for _, p := range state.ClusterCIDRs {
		if p.IsValid() && proxy.Of(p.Addr()) == f.family {
			g.clusterCIDRs = append(g.clusterCIDRs, p.Masked())
		}
	}
	for _, p := range state.NodePortAddresses {
		if !p.IsValid() || proxy.Of(p.Addr()) != f.family {
			continue
		}
		if p.Bits() == 0 {
			g.nodePortDsts = nil
			break
		}
		if !p.Masked().Addr().IsLoopback() {
			g.nodePortDsts = append(g.nodePortDsts, p.Masked())
		}
	}
	return g, nil
}

// name builds prefix + hash + "-" + readable suffix, at most 64 bytes.
func name(prefix, key, extra, suffix string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + extra))
	h := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])[:10])
	n := prefix + h + "-" + suffix
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}

// planService renders one service port.
func planService(s *proxy.ServicePort, g *globals) (*servicePlan, error) {
	key := s.Name.Key()
	proto, protoName, ok := protoNum(s.Protocol)
	if !ok {
		return nil, fmt.Errorf("%w: service port %s has unknown protocol %q", ErrInvalidState, key, s.Protocol)
	}
	p := &servicePlan{key: key, elems: map[string][]elem{}}
	cips, eips, lbips := g.addrs(s.ClusterIPs), g.addrs(s.ExternalIPs), g.addrs(s.LoadBalancerIPs)
	if s.Port == 0 && len(cips)+len(eips)+len(lbips) > 0 {
		return nil, fmt.Errorf("%w: service port %s has port 0", ErrInvalidState, key)
	}
	readable := s.Name.Namespace + "/" + s.Name.Name + "/" + s.Name.Port
	clusterEPs, err := g.endpoints(key, s.ClusterEndpoints)
	if err != nil {
		return nil, err
	}
	externalEPs, err := g.endpoints(key, s.ExternalEndpoints)
	if err != nil {
		return nil, err
	}
	var svc, externalChain, ext string
	if len(clusterEPs) > 0 {
		svc = name(prefixSVC, key, "", readable)
		c := chainDef{name: svc}
		c.rules = append(c.rules, g.clusterMasquerade(cips)...)
		p.balance(&c, name(prefixRR, key, "svc", readable), clusterEPs)
		p.chains = append(p.chains, c)
	}
	switch {
	case len(externalEPs) == 0:
	case slices.Equal(clusterEPs, externalEPs):
		externalChain = svc
	default:
		externalChain = name(prefixSVX, key, "", readable)
		c := chainDef{name: externalChain}
		p.balance(&c, name(prefixRR, key, "svx", readable), externalEPs)
		p.chains = append(p.chains, c)
	}
	hasExternal := s.NodePort != 0 || len(eips) > 0 || len(lbips) > 0
	if hasExternal && (externalChain != "" || (s.ExternalLocal && svc != "")) {
		ext = name(prefixEXT, key, "", readable)
		p.chains = append(p.chains, g.externalChain(ext, svc, externalChain, s.ExternalLocal))
	}
	seen := map[netip.AddrPort]bool{}
	for _, ep := range append(append([]netip.AddrPort{}, clusterEPs...), externalEPs...) {
		if !seen[ep] {
			seen[ep] = true
			p.chains = append(p.chains, g.endpointChain(key, readable, ep))
		}
	}
	// The shared maps: where each destination goes, or why it is turned
	// away in filter.
	reject := verdict(expr.VerdictGoto, chainReject)
	extMiss := reject
	if s.ExternalLocal {
		extMiss = verdict(expr.VerdictDrop, "")
	}
	for _, ip := range cips {
		k, t := destKey(ip, proto, s.Port), fmt.Sprintf("%s . %s . %d", ip, protoName, s.Port)
		if svc != "" {
			p.elems[mapServices] = append(p.elems[mapServices], elem{k, t, verdict(expr.VerdictGoto, svc)})
		} else {
			p.elems[mapNoEndpoints] = append(p.elems[mapNoEndpoints], elem{k, t, reject})
		}
	}
	for _, ip := range append(append([]netip.Addr{}, eips...), lbips...) {
		k, t := destKey(ip, proto, s.Port), fmt.Sprintf("%s . %s . %d", ip, protoName, s.Port)
		if ext != "" {
			p.elems[mapServices] = append(p.elems[mapServices], elem{k, t, verdict(expr.VerdictGoto, ext)})
		}
		if externalChain == "" {
			p.elems[mapNoEndpoints] = append(p.elems[mapNoEndpoints], elem{k, t, extMiss})
		}
	}
	if s.NodePort != 0 {
		k, t := nodePortKey(proto, s.NodePort), fmt.Sprintf("%s . %d", protoName, s.NodePort)
		if ext != "" {
			p.elems[mapNodePorts] = append(p.elems[mapNodePorts], elem{k, t, verdict(expr.VerdictGoto, ext)})
		}
		if externalChain == "" {
			p.elems[mapNoEndpointNodePorts] = append(p.elems[mapNoEndpointNodePorts], elem{k, t, extMiss})
		}
	}
	return p, nil
}

// addrs keeps the addresses of the family.
func (g *globals) addrs(in []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range in {
		if a.IsValid() && proxy.Of(a) == g.f.family {
			if g.f.family == proxy.IPv4 {
				a = a.Unmap()
			}
			out = append(out, a.WithZone(""))
		}
	}
	return out
}

func (g *globals) endpoints(key string, eps []proxy.Endpoint) ([]netip.AddrPort, error) {
	out := make([]netip.AddrPort, 0, len(eps))
	for _, ep := range eps {
		if ep.Port == 0 {
			return nil, fmt.Errorf("%w: service port %s has endpoint %s with port 0", ErrInvalidState, key, ep.IP)
		}
		if a := g.addrs([]netip.Addr{ep.IP}); len(a) == 1 {
			out = append(out, netip.AddrPortFrom(a[0], ep.Port))
		}
	}
	return out, nil
}

// clusterMasquerade marks cluster-IP traffic for masquerade: all of it
// (masqueradeAll) or what comes from outside the cluster CIDRs. The daddr
// match keeps the external destinations, which reach the chain too, out.
func (g *globals) clusterMasquerade(cips []netip.Addr) []rule {
	if !g.masqueradeAll && len(g.clusterCIDRs) == 0 {
		return nil
	}
	target := chainMarkOffCluster
	if g.masqueradeAll {
		target = chainMarkMasq
	}
	var out []rule
	for _, ip := range cips {
		out = append(out, rule{}.and(g.f.matchAddr(false, ip, false)).and(jumpTo(expr.VerdictJump, target)))
	}
	return out
}

// balance ends a chain with the round robin over eps: "numgen inc mod N
// vmap @rr", value i to endpoint i: connection k (from 0) through the rule
// goes to endpoint k mod N.
func (p *servicePlan) balance(c *chainDef, rrName string, eps []netip.AddrPort) {
	n := uint32(len(eps))
	m := rrMap{name: rrName}
	for i, ep := range eps {
		v := uint32(i)
		m.elems = append(m.elems, elem{key: nativeU32(v), text: fmt.Sprint(v), v: verdict(expr.VerdictGoto, endpointChainName(p.key, ep))})
	}
	p.rr = append(p.rr, m)
	c.rules = append(c.rules, rule{text: fmt.Sprintf("numgen inc mod %d vmap @%s", n, rrName), exprs: []expr.Any{
		&expr.Numgen{Register: reg1, Modulus: n, Type: numgenInc},
		vmapLookup(reg1, rrName),
	}})
}

func endpointChainName(key string, ep netip.AddrPort) string {
	return name(prefixSEP, key, ep.String(), ep.String())
}

// externalChain handles traffic to the external destinations: masquerade
// and on to the external endpoints, or for externalTrafficPolicy: Local the
// short circuits of the node's and its pods' own traffic to the cluster
// endpoints.
func (g *globals) externalChain(ext, svc, externalChain string, local bool) chainDef {
	c := chainDef{name: ext}
	if !local {
		c.rules = append(c.rules, rule{}.and(jumpTo(expr.VerdictJump, chainMarkMasq)))
		c.rules = append(c.rules, rule{}.and(jumpTo(expr.VerdictGoto, externalChain)))
		return c
	}
	if svc != "" {
		for _, cidr := range g.clusterCIDRs {
			c.rules = append(c.rules, rule{}.and(g.f.matchPrefix(true, cidr, false)).and(jumpTo(expr.VerdictGoto, svc)))
		}
		c.rules = append(c.rules, rule{}.and(fibLocal(true)).and(jumpTo(expr.VerdictJump, chainMarkMasq)))
		c.rules = append(c.rules, rule{}.and(fibLocal(true)).and(jumpTo(expr.VerdictGoto, svc)))
	}
	if externalChain != "" {
		c.rules = append(c.rules, rule{}.and(jumpTo(expr.VerdictGoto, externalChain)))
	}
	return c
}

// endpointChain masquerades hairpin traffic (an endpoint reaching itself
// through the service) and DNATs to the endpoint.
func (g *globals) endpointChain(key, readable string, ep netip.AddrPort) chainDef {
	return chainDef{name: endpointChainName(key, ep), rules: []rule{
		rule{}.and(g.f.matchAddr(true, ep.Addr(), false)).and(jumpTo(expr.VerdictJump, chainMarkMasq)),
		rule{}.and(g.f.dnat(ep)),
	}}
}
