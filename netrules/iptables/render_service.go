package iptables

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

// servicePlan is one service port, its addresses filtered to the family and
// formatted, and the names of the chains it uses ("" for one it does not).
type servicePlan struct {
	sp      *proxy.ServicePort
	key     string
	comment string
	proto   string
	port    string
	// protoArg and dportArg match the protocol and the service port.
	protoArg, dportArg string

	clusterIPs, externalIPs, lbIPs []string
	// sourceRanges are the loadBalancerSourceRanges of the family;
	// restricted tells that the service has any (of any family): ranges
	// only of the other family then let nobody in rather than everyone.
	sourceRanges []string
	restricted   bool
	// allowFromNode tells that a source range holds a node IP: the node
	// reaches a load-balancer IP it carries with that IP as the source.
	allowFromNode bool
	affinity      string

	clusterEPs, externalEPs []endpointPlan
	// svc balances over clusterEPs; svx over externalEPs when they differ
	// (else externalChain is svc); ext and fw as the chain prefixes say.
	svc, svx, ext, fw, externalChain string
	// seps are the distinct endpoints of both lists.
	seps []endpointPlan
}

// endpointPlan is one endpoint and its SEP chain.
type endpointPlan struct {
	chain string
	ap    netip.AddrPort
}

// dest is the DNAT destination, "ip:port" or "[ip]:port".
func (e endpointPlan) dest() string { return e.ap.String() }

// chainOwner is what a chain is for: a service port, or one of its
// endpoints.
type chainOwner struct {
	key string
	ep  netip.AddrPort
}

// chainOwners records the owner of every per-service chain, so that two
// service ports or endpoints whose names hash alike are caught.
type chainOwners map[string]chainOwner

// claim records the plan's chains, or fails if another owner has one.
func (o chainOwners) claim(p *servicePlan) error {
	one := func(chain string, c chainOwner) error {
		if prev, ok := o[chain]; ok && prev != c {
			return fmt.Errorf("%w: %s is the name of both %v and %v", ErrChainNameCollision, chain, prev, c)
		}
		o[chain] = c
		return nil
	}
	for _, c := range []string{p.svc, p.svx, p.ext, p.fw} {
		if c != "" {
			if err := one(c, chainOwner{key: p.key}); err != nil {
				return err
			}
		}
	}
	for _, ep := range p.seps {
		if err := one(ep.chain, chainOwner{key: p.key, ep: ep.ap}); err != nil {
			return err
		}
	}
	return nil
}

// release forgets the chains that key owns among chains.
func (o chainOwners) release(key string, chains []string) {
	for _, c := range chains {
		if o[c].key == key {
			delete(o, c)
		}
	}
}

func planService(s *proxy.ServicePort, g *globals) (servicePlan, error) {
	key := s.Name.Key()
	p := servicePlan{sp: s, key: key, comment: xtables.CommentText(s.Name.String())}
	switch s.Protocol {
	case proxy.TCP, proxy.UDP, proxy.SCTP:
		p.proto = strings.ToLower(string(s.Protocol))
	default:
		return p, fmt.Errorf("%w: service port %s has unknown protocol %q", ErrInvalidState, key, s.Protocol)
	}
	p.port = itoa(s.Port)
	p.protoArg, p.dportArg = "-p "+p.proto, "-m "+p.proto+" --dport "+p.port
	p.clusterIPs = g.hosts(s.ClusterIPs)
	p.externalIPs = g.hosts(s.ExternalIPs)
	p.lbIPs = g.hosts(s.LoadBalancerIPs)
	if s.Port == 0 && len(p.clusterIPs)+len(p.externalIPs)+len(p.lbIPs) > 0 {
		return p, fmt.Errorf("%w: service port %s has port 0", ErrInvalidState, key)
	}
	p.restricted = len(s.SourceRanges) > 0
	for _, r := range s.SourceRanges {
		if str, ok := g.prefix(r); ok {
			p.sourceRanges = append(p.sourceRanges, str)
			for _, ip := range g.nodeIPs {
				p.allowFromNode = p.allowFromNode || r.Contains(ip)
			}
		}
	}
	if s.AffinityTimeout > 0 {
		// --seconds counts whole seconds; round up so that a sub-second
		// timeout is not "no timeout".
		p.affinity = strconv.FormatInt(int64((s.AffinityTimeout+time.Second-1)/time.Second), 10)
	}
	var err error
	if p.clusterEPs, err = planEndpoints(key, s.ClusterEndpoints, g); err != nil {
		return p, err
	}
	if p.externalEPs, err = planEndpoints(key, s.ExternalEndpoints, g); err != nil {
		return p, err
	}
	p.nameChains(s)
	return p, nil
}

// nameChains decides which chains the service port uses.
func (p *servicePlan) nameChains(s *proxy.ServicePort) {
	if len(p.clusterEPs) > 0 {
		p.svc = serviceChain(PrefixSVC, p.key, s.Name.Name)
	}
	switch {
	case len(p.externalEPs) == 0:
	case sameEndpoints(p.clusterEPs, p.externalEPs):
		p.externalChain = p.svc
	default:
		p.svx = serviceChain(PrefixSVX, p.key, s.Name.Name)
		p.externalChain = p.svx
	}
	hasExternal := s.NodePort != 0 || len(p.externalIPs) > 0 || len(p.lbIPs) > 0
	// The EXT chain is needed even without external endpoints when the
	// policy is Local: it short-circuits the node's own traffic to the
	// cluster endpoints.
	if hasExternal && (p.externalChain != "" || (s.ExternalLocal && p.svc != "")) {
		p.ext = serviceChain(PrefixEXT, p.key, s.Name.Name)
	}
	if p.ext != "" && len(p.lbIPs) > 0 && p.restricted {
		p.fw = serviceChain(PrefixFW, p.key, s.Name.Name)
	}
	seen := make(map[string]bool, len(p.clusterEPs))
	for _, list := range [][]endpointPlan{p.clusterEPs, p.externalEPs} {
		for _, ep := range list {
			if !seen[ep.chain] {
				seen[ep.chain] = true
				p.seps = append(p.seps, ep)
			}
		}
	}
}

func sameEndpoints(a, b []endpointPlan) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ap != b[i].ap {
			return false
		}
	}
	return true
}

func planEndpoints(key string, eps []proxy.Endpoint, g *globals) ([]endpointPlan, error) {
	out := make([]endpointPlan, 0, len(eps))
	for _, ep := range eps {
		if ep.Port == 0 {
			return nil, fmt.Errorf("%w: service port %s has endpoint %s with port 0", ErrInvalidState, key, ep.IP)
		}
		ip, ok := g.addr(ep.IP)
		if !ok {
			continue
		}
		ap := netip.AddrPortFrom(ip, ep.Port)
		out = append(out, endpointPlan{chain: endpointChain(key, ap), ap: ap})
	}
	return out, nil
}

// hosts formats the addresses of the family.
func (g *globals) hosts(addrs []netip.Addr) []string {
	var out []string
	for _, a := range addrs {
		if a, ok := g.addr(a); ok {
			out = append(out, g.host(a))
		}
	}
	return out
}

// chains lists the per-service chains the plan uses.
func (p *servicePlan) chains() []string {
	out := make([]string, 0, 4+len(p.seps))
	for _, c := range []string{p.svc, p.svx, p.ext, p.fw} {
		if c != "" {
			out = append(out, c)
		}
	}
	for _, ep := range p.seps {
		out = append(out, ep.chain)
	}
	return out
}

// allIn tells whether existing holds all the nat chains.
func allIn(existing ChainSet, chains []string) bool {
	for _, c := range chains {
		if !existing.Has(xtables.TableNAT, c) {
			return false
		}
	}
	return true
}

// writeEntries writes the service port's rules in the top-level chains:
// the jumps to its chains, and the filter rules for destinations without
// endpoints.
func (r *payloadWriter) writeEntries(p *servicePlan, nat, filter *xtables.Writer) {
	proto, dport := p.protoArg, p.dportArg
	for _, ip := range p.clusterIPs {
		if p.svc != "" {
			nat.Add(ChainServices, "-d", ip, proto, xtables.Comment(p.comment+" cluster IP"), dport, "-j", p.svc)
		} else {
			filter.Add(ChainServices, "-d", ip, proto, xtables.Comment(p.comment+" has no endpoints"), dport,
				"-j REJECT --reject-with", r.g.rejectWith)
		}
	}
	lbTarget := p.ext
	if p.fw != "" {
		lbTarget = p.fw
	}
	if p.ext != "" {
		for _, ip := range p.externalIPs {
			nat.Add(ChainServices, "-d", ip, proto, xtables.Comment(p.comment+" external IP"), dport, "-j", p.ext)
		}
		for _, ip := range p.lbIPs {
			nat.Add(ChainServices, "-d", ip, proto, xtables.Comment(p.comment+" loadbalancer IP"), dport, "-j", lbTarget)
		}
		if p.sp.NodePort != 0 {
			nat.Add(ChainNodePorts, proto, xtables.Comment(p.comment), "-m", p.proto, "--dport", itoa(p.sp.NodePort), "-j", p.ext)
		}
	}
	if p.fw != "" {
		for _, ip := range p.lbIPs {
			filter.Add(ChainFirewall, "-d", ip, proto, xtables.Comment(p.comment+" traffic not accepted by "+p.fw), dport, "-j DROP")
		}
	}
	if p.externalChain == "" {
		r.writeExternalFilter(p, filter)
	}
	if hc := p.sp.HealthCheckNodePort; hc != 0 {
		filter.Add(ChainNodePorts, "-p tcp", xtables.Comment(p.comment+" health check node port"), "-m tcp --dport", itoa(hc), "-j ACCEPT")
	}
}

// writeExternalFilter rejects (no endpoints) or drops (externalTrafficPolicy
// Local, no local endpoints) what reaches the service's external
// destinations without being DNATed: traffic the EXT chain did not
// short-circuit to the cluster endpoints.
func (r *payloadWriter) writeExternalFilter(p *servicePlan, filter *xtables.Writer) {
	target, text := "-j REJECT --reject-with "+r.g.rejectWith, p.comment+" has no endpoints"
	if p.sp.ExternalLocal {
		target, text = "-j DROP", p.comment+" has no local endpoints"
	}
	proto, dport := p.protoArg, p.dportArg
	for _, ips := range [][]string{p.externalIPs, p.lbIPs} {
		for _, ip := range ips {
			filter.Add(ChainExternalServices, "-d", ip, proto, xtables.Comment(text), dport, target)
		}
	}
	if p.sp.NodePort != 0 {
		filter.Add(ChainExternalServices, proto, xtables.Comment(text), "-m addrtype --dst-type LOCAL",
			"-m", p.proto, "--dport", itoa(p.sp.NodePort), target)
	}
}

// writeService declares and fills the service port's own chains; it
// returns the number of rules it wrote.
func (r *payloadWriter) writeService(p *servicePlan, chains []string) int {
	before := r.own.Rules()
	for _, c := range chains {
		r.own.Declare(c)
	}
	if p.svc != "" {
		r.writeClusterMasquerade(p)
		r.writeBalance(p, p.svc, p.clusterEPs)
	}
	if p.svx != "" {
		r.writeBalance(p, p.svx, p.externalEPs)
	}
	if p.ext != "" {
		r.writeExternal(p)
	}
	if p.fw != "" {
		r.writeFirewall(p)
	}
	text := xtables.Comment(p.comment)
	for _, ep := range p.seps {
		r.writeEndpoint(p, ep, text)
	}
	return r.own.Rules() - before
}

// writeClusterMasquerade marks cluster-IP traffic for masquerade: all of it
// (MasqueradeAll), or what comes from outside the cluster CIDRs (a router
// sending the service range to this node), as kube-proxy does. The -d match
// keeps the external destinations, which also reach this chain, out.
func (r *payloadWriter) writeClusterMasquerade(p *servicePlan) {
	g := r.g
	if !g.masqueradeAll && len(g.clusterCIDRs) == 0 {
		return
	}
	proto, dport := p.protoArg, p.dportArg
	text := xtables.Comment(p.comment + " cluster IP")
	for _, ip := range p.clusterIPs {
		switch {
		case g.masqueradeAll:
			r.own.Add(p.svc, "-d", ip, proto, text, dport, "-j", ChainMarkMasq)
		case len(g.clusterCIDRs) == 1:
			r.own.Add(p.svc, "! -s", g.clusterCIDRs[0], "-d", ip, proto, text, dport, "-j", ChainMarkMasq)
		default:
			r.own.Add(p.svc, "-d", ip, proto, text, dport, "-j", ChainMarkOffCluster)
		}
	}
}

// writeBalance sends new connections to the endpoints in turn: rule i of n
// takes every (n-i)th connection of those the rules before it let through,
// so connection k (from 0) goes to endpoint k mod n. Session affinity first
// sends a client back to the endpoint it used within the timeout.
func (r *payloadWriter) writeBalance(p *servicePlan, chain string, eps []endpointPlan) {
	texts := make([]string, len(eps))
	for i, ep := range eps {
		texts[i] = xtables.Comment(p.comment + " -> " + ep.dest())
	}
	if p.affinity != "" {
		for i, ep := range eps {
			r.own.Add(chain, texts[i], "-m recent --rcheck --seconds", p.affinity,
				"--reap --name", ep.chain, "--mask", r.g.recentMask, "--rsource -j", ep.chain)
		}
	}
	n := len(eps)
	for i, ep := range eps {
		if n-i > 1 {
			r.own.Add(chain, texts[i], "-m statistic --mode nth --every", strconv.Itoa(n-i), "--packet 0 -j", ep.chain)
		} else {
			r.own.Add(chain, texts[i], "-j", ep.chain)
		}
	}
}

// writeExternal fills the EXT chain, which every external destination
// (node port, external IP, load-balancer IP) jumps to.
func (r *payloadWriter) writeExternal(p *servicePlan) {
	if !p.sp.ExternalLocal {
		// Endpoints may be on other nodes: masquerade so that replies
		// come back through this node.
		r.own.Add(p.ext, xtables.Comment("masquerade traffic for "+p.comment+" external destinations"), "-j", ChainMarkMasq)
		r.own.Add(p.ext, xtables.Comment(p.comment), "-j", p.externalChain)
		return
	}
	// Local policy: keep the client's address. Pods and the node itself
	// are not subject to the policy (as if they went out to a load
	// balancer and came back), so they go to the cluster endpoints rather
	// than being dropped when this node has no local endpoint.
	if p.svc != "" {
		for _, c := range r.g.clusterCIDRs {
			r.own.Add(p.ext, "-s", c, xtables.Comment("pod traffic for "+p.comment+" external destinations"), "-j", p.svc)
		}
	}
	// The node's own traffic has a local address as its source, which
	// the endpoint could not answer: masquerade it.
	r.own.Add(p.ext, xtables.Comment("masquerade LOCAL traffic for "+p.comment+" external destinations"),
		"-m addrtype --src-type LOCAL -j", ChainMarkMasq)
	if p.svc != "" {
		r.own.Add(p.ext, xtables.Comment("route LOCAL traffic for "+p.comment+" external destinations"),
			"-m addrtype --src-type LOCAL -j", p.svc)
	}
	if p.externalChain != "" {
		r.own.Add(p.ext, xtables.Comment(p.comment), "-j", p.externalChain)
	}
}

// writeFirewall fills the FW chain: the allowed sources go on to EXT; the
// rest falls through un-DNATed and BERTH-FIREWALL drops it in filter.
func (r *payloadWriter) writeFirewall(p *servicePlan) {
	text := xtables.Comment(p.comment + " loadbalancer IP")
	for _, src := range p.sourceRanges {
		r.own.Add(p.fw, "-s", src, text, "-j", p.ext)
	}
	if p.allowFromNode {
		for _, ip := range p.lbIPs {
			r.own.Add(p.fw, "-s", ip, text, "-j", p.ext)
		}
	}
	r.own.Add(p.fw, xtables.Comment("other traffic to "+p.comment+" will be dropped by "+ChainFirewall))
}

// writeEndpoint fills a SEP chain: masquerade hairpin traffic (the endpoint
// reaching itself through the service, which it could not answer un-NATed),
// remember the client for affinity, DNAT.
func (r *payloadWriter) writeEndpoint(p *servicePlan, ep endpointPlan, text string) {
	r.own.Add(ep.chain, "-s", r.g.host(ep.ap.Addr()), text, "-j", ChainMarkMasq)
	if p.affinity != "" {
		r.own.Add(ep.chain, "-p", p.proto, text, "-m recent --set --name", ep.chain, "--mask", r.g.recentMask,
			"--rsource -j DNAT --to-destination", ep.dest())
		return
	}
	r.own.Add(ep.chain, "-p", p.proto, text, "-j DNAT --to-destination", ep.dest())
}
