package nftables

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

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

// The per-service-port chain prefixes; the rest of a name is a hash of
// the port's key and a readable suffix.
const (
	prefixSVC = "svc-"
	prefixSVX = "svx-"
	prefixEXT = "ext-"
	prefixAFF = "aff-"
	prefixAFX = "afx-"
	prefixRR  = "rr-"
	prefixFW  = "fw-"
)

// The data maps and sets every service port shares.
const (
	// mapEndpoints maps a numgen value to an endpoint's address . port:
	// each balancing chain owns a range of values (see allocator), in one
	// of endpointShards maps (chosen by a hash of the service port).
	mapEndpoints = "endpoints"
	// setHairpin holds addr . addr for every endpoint address: a DNATed
	// connection from an endpoint to itself is masqueraded.
	setHairpin = "hairpin"
	// setClusterIPs holds every cluster IP: a new connection to one that
	// no service port DNATed (a port no service uses) is rejected, as
	// kube-proxy's nftables and IPVS modes do.
	setClusterIPs = "cluster-ips"
)

// endpointShards is the number of endpoints maps. Every rule that looks a
// map up binds to it, and the kernel checks each element of a map against
// each of its bindings: one map for every service would cost services x
// endpoints checks (10,000 x 50,000 took seconds); a map per service
// would make every lookup by name walk the table's sets. 128 maps keep
// both small.
const endpointShards = 128

// endpointsMap is the endpoints map of a service port.
func endpointsMap(key string) string {
	sum := sha256.Sum256([]byte(key))
	return fmt.Sprintf("%s-%02x", mapEndpoints, binary.BigEndian.Uint16(sum[:2])%endpointShards)
}

// Options are the settings of a backend that are not part of a State.
type Options struct {
	// MasqueradeBit is the packet-mark bit (0-31) that asks for masquerade.
	MasqueradeBit int
	// TCPBeLiberal tells that the node's conntrack accepts out-of-window
	// TCP packets (nf_conntrack_tcp_be_liberal=1); otherwise forwarded
	// packets conntrack finds INVALID are dropped.
	TCPBeLiberal bool
}

// elem is one element of a map or set: a verdict (v), data (val), or
// neither (a set).
type elem struct {
	key  []byte
	val  []byte
	text string
	v    *expr.Verdict
}

// id identifies the element within its map: the key, and the value, which
// a partial sync must replace when it changes.
func (e elem) id() string { return string(e.key) }

func (e elem) same(o elem) bool {
	return string(e.val) == string(o.val) && e.text == o.text
}

// chainDef is a regular chain and its rules.
type chainDef struct {
	name  string
	rules []rule
}

// text is the chain's rules as one string, to tell whether they changed.
func (c chainDef) text() string {
	var b strings.Builder
	for _, r := range c.rules {
		b.WriteString(r.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// servicePlan is everything one service port puts in the table.
type servicePlan struct {
	key    string
	chains []chainDef
	// elems are the port's elements of the shared maps and sets, by name.
	elems map[string][]elem
	// ranges are the numgen ranges its balancing chains own, by chain.
	ranges map[string]numRange
	// own are its own sets and maps (session affinity).
	own []ownSet
}

// ownSet is a set or map of one service port: an affinity set (the
// clients that used one endpoint, each for timeout) or a round-robin
// verdict map.
type ownSet struct {
	name    string
	timeout time.Duration
	elems   []elem
}

// numRange is a balancing chain's numgen values: base to base+n-1.
type numRange struct{ base, n uint32 }

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
	tcpBeLiberal  bool
	nodeIPs       []netip.Addr
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
	g := &globals{f: f, bit: uint32(1) << opts.MasqueradeBit, masqueradeAll: state.MasqueradeAll, tcpBeLiberal: opts.TCPBeLiberal}
	g.nodeIPs = g.addrs(state.NodeIPs)
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
func name(prefix, key, suffix string) string {
	sum := sha256.Sum256([]byte(key))
	h := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])[:10])
	n := prefix + h + "-" + suffix
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}

// allocator hands out numgen ranges: a chain keeps its range while its
// number of endpoints stays the same, so that a partial sync that replaces
// an endpoint changes map elements only (and the turn goes on).
type allocator struct {
	next   uint32
	ranges map[string]numRange
}

func newAllocator() *allocator { return &allocator{ranges: map[string]numRange{}} }

// get returns chain's range of n values, the one it had if of that size.
func (a *allocator) get(chain string, n uint32) numRange {
	if r, ok := a.ranges[chain]; ok && r.n == n {
		return r
	}
	r := numRange{base: a.next, n: n}
	a.next += n
	a.ranges[chain] = r
	return r
}

// planService renders one service port.
func planService(s *proxy.ServicePort, g *globals, alloc *allocator) (*servicePlan, error) {
	key := s.Name.Key()
	proto, protoName, ok := protoNum(s.Protocol)
	if !ok {
		return nil, fmt.Errorf("%w: service port %s has unknown protocol %q", ErrInvalidState, key, s.Protocol)
	}
	p := &servicePlan{key: key, elems: map[string][]elem{}, ranges: map[string]numRange{}}
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
		svc = name(prefixSVC, key, readable)
		c := chainDef{name: svc, rules: g.clusterMasquerade(cips)}
		p.balance(&c, g, alloc, clusterEPs, s.AffinityTimeout)
		p.chains = append(p.chains, c)
	}
	switch {
	case len(externalEPs) == 0:
	case slices.Equal(clusterEPs, externalEPs):
		externalChain = svc
	default:
		externalChain = name(prefixSVX, key, readable)
		c := chainDef{name: externalChain}
		p.balance(&c, g, alloc, externalEPs, s.AffinityTimeout)
		p.chains = append(p.chains, c)
	}
	hasExternal := s.NodePort != 0 || len(eips) > 0 || len(lbips) > 0
	if hasExternal && (externalChain != "" || (s.ExternalLocal && svc != "")) {
		ext = name(prefixEXT, key, readable)
		p.chains = append(p.chains, g.externalChain(ext, svc, externalChain, s.ExternalLocal))
	}
	seen := map[netip.Addr]bool{}
	for _, ep := range append(append([]netip.AddrPort{}, clusterEPs...), externalEPs...) {
		if a := ep.Addr(); !seen[a] {
			seen[a] = true
			k := append(padKey(a.AsSlice()), padKey(a.AsSlice())...)
			p.elems[setHairpin] = append(p.elems[setHairpin], elem{key: k, text: a.String() + " . " + a.String()})
		}
	}
	fw := ""
	if ext != "" && len(lbips) > 0 && len(s.SourceRanges) > 0 {
		fw = name(prefixFW, key, readable)
		p.chains = append(p.chains, g.firewallChain(fw, ext, s.SourceRanges, lbips))
	}
	p.destinations(s, proto, protoName, cips, eips, lbips, svc, ext, externalChain, fw)
	return p, nil
}

// firewallChain lets loadBalancerSourceRanges through to the external
// chain; the rest falls through un-DNATed, and filter drops it (the
// load-balancer IP's drop element in no-endpoint-ips). A range that holds
// a node IP also lets the node reach a load-balancer IP it carries, with
// that IP as the source. Ranges only of the other family let nobody in.
func (g *globals) firewallChain(fw, ext string, ranges []netip.Prefix, lbips []netip.Addr) chainDef {
	c := chainDef{name: fw}
	fromNode := false
	for _, r := range ranges {
		if !r.IsValid() || proxy.Of(r.Addr()) != g.f.family {
			continue
		}
		c.rules = append(c.rules, rule{}.and(g.f.matchPrefix(true, r, false)).and(jumpTo(expr.VerdictGoto, ext)))
		for _, ip := range g.nodeIPs {
			fromNode = fromNode || r.Contains(ip)
		}
	}
	if fromNode {
		for _, ip := range lbips {
			c.rules = append(c.rules, rule{}.and(g.f.matchAddr(true, ip, false)).and(jumpTo(expr.VerdictGoto, ext)))
		}
	}
	return c
}

// destinations adds the elements of the shared verdict maps: where each
// destination goes, or why filter turns it away.
func (p *servicePlan) destinations(s *proxy.ServicePort, proto uint8, protoName string, cips, eips, lbips []netip.Addr, svc, ext, externalChain, fw string) {
	reject := verdict(expr.VerdictGoto, chainReject)
	extMiss := reject
	if s.ExternalLocal {
		extMiss = verdict(expr.VerdictDrop, "")
	}
	add := func(m string, k []byte, t string, v *expr.Verdict) {
		p.elems[m] = append(p.elems[m], elem{key: k, text: t + " : " + verdictText(v), v: v})
	}
	for _, ip := range cips {
		p.elems[setClusterIPs] = append(p.elems[setClusterIPs], elem{key: ip.AsSlice(), text: ip.String()})
		k, t := destKey(ip, proto, s.Port), fmt.Sprintf("%s . %s . %d", ip, protoName, s.Port)
		if svc != "" {
			add(mapServices, k, t, verdict(expr.VerdictGoto, svc))
		} else {
			add(mapNoEndpoints, k, t, reject)
		}
	}
	for i, ip := range append(append([]netip.Addr{}, eips...), lbips...) {
		k, t := destKey(ip, proto, s.Port), fmt.Sprintf("%s . %s . %d", ip, protoName, s.Port)
		lb := i >= len(eips)
		switch {
		case lb && fw != "":
			add(mapServices, k, t, verdict(expr.VerdictGoto, fw))
		case ext != "":
			add(mapServices, k, t, verdict(expr.VerdictGoto, ext))
		}
		switch {
		case lb && fw != "":
			// What the firewall chain did not let through.
			add(mapNoEndpoints, k, t, verdict(expr.VerdictDrop, ""))
		case externalChain == "":
			add(mapNoEndpoints, k, t, extMiss)
		}
	}
	if s.NodePort != 0 {
		k, t := nodePortKey(proto, s.NodePort), fmt.Sprintf("%s . %d", protoName, s.NodePort)
		if ext != "" {
			add(mapNodePorts, k, t, verdict(expr.VerdictGoto, ext))
		}
		if externalChain == "" {
			add(mapNoEndpointNodePorts, k, t, extMiss)
		}
	}
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

// balance ends a chain with the round robin over eps: "dnat to numgen inc
// mod N offset B map @endpoints", where values B+i map to endpoint i:
// connection k (from 0) through the rule goes to endpoint k mod N. With
// session affinity see affinityBalance.
func (p *servicePlan) balance(c *chainDef, g *globals, alloc *allocator, eps []netip.AddrPort, affinity time.Duration) {
	if affinity > 0 {
		p.affinityBalance(c, g, eps, affinity)
		return
	}
	n := uint32(len(eps))
	r := alloc.get(c.name, n)
	p.ranges[c.name] = r
	m := endpointsMap(p.key)
	for i, ep := range eps {
		v := r.base + uint32(i)
		val := padKey(ep.Addr().AsSlice())
		val = padKey(binary.BigEndian.AppendUint16(val, ep.Port()))
		p.elems[m] = append(p.elems[m], elem{key: nativeU32(v), val: val,
			text: fmt.Sprintf("%d : %s . %d", v, ep.Addr(), ep.Port())})
	}
	c.rules = append(c.rules, g.f.dnatMap(m, n, r.base))
}

// affinityBalance is the round robin with ClientIP session affinity, as
// kube-proxy's: a set per endpoint remembers its clients (each for the
// timeout since its last new connection), and a client in one goes back
// to that endpoint without taking a turn. The names hash the chain's
// endpoints, so that a change of endpoints starts afresh rather than keep
// clients on an endpoint that is gone.
func (p *servicePlan) affinityBalance(c *chainDef, g *globals, eps []netip.AddrPort, affinity time.Duration) {
	var list strings.Builder
	for _, ep := range eps {
		list.WriteString(ep.String() + ",")
	}
	tag := c.name + "\x00" + list.String()
	suffix := strings.TrimPrefix(c.name, prefixSVC)
	rr := ownSet{name: name(prefixRR, tag, suffix)}
	for i, ep := range eps {
		set := name(prefixAFF, fmt.Sprint(tag, i), suffix)
		chain := name(prefixAFX, fmt.Sprint(tag, i), ep.String())
		p.own = append(p.own, ownSet{name: set, timeout: affinity})
		p.chains = append(p.chains, chainDef{name: chain, rules: []rule{g.f.affinityUpdate(set, affinity), g.f.dnat(ep)}})
		c.rules = append(c.rules, g.f.affinityCheck(set, chain))
		v := verdict(expr.VerdictGoto, chain)
		rr.elems = append(rr.elems, elem{key: nativeU32(uint32(i)), text: fmt.Sprintf("%d : %s", i, verdictText(v)), v: v})
	}
	p.own = append(p.own, rr)
	c.rules = append(c.rules, numgenVmap(rr.name, uint32(len(eps))))
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
