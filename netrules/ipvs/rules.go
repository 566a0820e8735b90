package ipvs

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

// RuleOptions are the inputs of RenderRules that are not in the State.
type RuleOptions struct {
	// MasqueradeBit is the bit of the packet mark that asks for masquerade.
	MasqueradeBit int
	// NodePortAddrs are the addresses node ports answer on.
	NodePortAddrs []netip.Addr
}

// Rules are the iptables-restore --noflush inputs of the IPVS backend.
type Rules struct {
	// Tables are the inputs, filter then nat.
	Tables []xtables.TableData
	// Count is the number of rules in the backend's chains.
	Count int
}

// RenderRules renders the iptables rules IPVS mode needs for state: one
// iptables-restore --noflush input per table that declares (and so
// flushes) every chain of the backend and fills it. It is pure. The rules
// are per virtual address and port, since ipsets are not assumed; their
// number grows with the services, not with the endpoints (but for hairpin,
// one rule per local endpoint).
func RenderRules(state *proxy.State, opts RuleOptions) (Rules, error) {
	if state == nil {
		return Rules{}, fmt.Errorf("%w: nil state", ErrInvalidState)
	}
	if opts.MasqueradeBit < 0 || opts.MasqueradeBit > 31 {
		return Rules{}, fmt.Errorf("masquerade bit %d is not in 0-31", opts.MasqueradeBit)
	}
	w, err := newRuleWriter(state, opts)
	if err != nil {
		return Rules{}, err
	}
	w.writeStatic()
	for i := range state.Services {
		sp := &state.Services[i]
		if protocolNumber(sp.Protocol) == 0 {
			return Rules{}, fmt.Errorf("%w: service port %s has unknown protocol %q", ErrInvalidState, sp.Name.Key(), sp.Protocol)
		}
		w.writeService(w.portOf(sp))
	}
	w.writeTail()
	return Rules{
		Tables: []xtables.TableData{
			{Table: xtables.TableFilter, Data: w.filter.Bytes()},
			{Table: xtables.TableNAT, Data: w.nat.Bytes()},
		},
		Count: w.nat.Rules() + w.filter.Rules(),
	}, nil
}

// ruleWriter writes the payloads of one render.
type ruleWriter struct {
	family        proxy.Family
	nat, filter   *xtables.ChainWriter
	mark, markOff string
	hostBits      string
	rejectWith    string
	clusterCIDRs  []string
	masqAll       bool
	nodePortAddrs []netip.Addr
	nodeIPs       []netip.Addr
	// guard collects the filter rules of ChainFilter: the service ports
	// of each address on the dummy interface, in order.
	guard    []guardEntry
	opened   map[guardEntry]bool
	guarded  map[netip.Addr]bool
	hairpins map[string]bool
}

// guardEntry is one open service port of an address on the dummy.
type guardEntry struct {
	addr         netip.Addr
	proto, dport string
}

func newRuleWriter(state *proxy.State, opts RuleOptions) (*ruleWriter, error) {
	bit := fmt.Sprintf("0x%x", uint32(1)<<opts.MasqueradeBit)
	w := &ruleWriter{
		family: state.Family, nat: xtables.NewChainWriter(xtables.TableNAT, tableChains(xtables.TableNAT)...),
		filter: xtables.NewChainWriter(xtables.TableFilter, tableChains(xtables.TableFilter)...),
		mark:   bit + "/" + bit, markOff: bit + "/0x0", masqAll: state.MasqueradeAll,
		nodePortAddrs: opts.NodePortAddrs, guarded: map[netip.Addr]bool{}, opened: map[guardEntry]bool{}, hairpins: map[string]bool{},
	}
	switch state.Family {
	case proxy.IPv4:
		w.hostBits, w.rejectWith = "/32", "icmp-port-unreachable"
	case proxy.IPv6:
		w.hostBits, w.rejectWith = "/128", "icmp6-port-unreachable"
	default:
		return nil, fmt.Errorf("%w: unknown family %d", ErrInvalidState, state.Family)
	}
	for _, p := range state.ClusterCIDRs {
		if p.IsValid() && !p.Addr().Is4In6() && proxy.Of(p.Addr()) == state.Family {
			w.clusterCIDRs = append(w.clusterCIDRs, p.Masked().String())
		}
	}
	for _, a := range state.NodeIPs {
		if a, ok := inFamily(a, state.Family); ok {
			w.nodeIPs = append(w.nodeIPs, a)
		}
	}
	return w, nil
}

func (w *ruleWriter) host(a netip.Addr) string { return a.String() + w.hostBits }

// writeStatic writes the rules that do not depend on services (the
// writers declared every chain).
func (w *ruleWriter) writeStatic() {
	w.nat.Add(ChainMarkMasq, "-j MARK --set-xmark", w.mark)
	if len(w.clusterCIDRs) > 1 {
		for _, c := range w.clusterCIDRs {
			w.nat.Add(ChainMarkOffCluster, "-s", c, "-j RETURN")
		}
		w.nat.Add(ChainMarkOffCluster, "-j", ChainMarkMasq)
	}
	// Established traffic only goes through the node-port ACCEPTs: the
	// refusals are for new connections, so that the connections of a
	// service whose last endpoint is draining are left to finish.
	newOnly := "-m conntrack --ctstate NEW -j"
	w.filter.Add(ChainInput, newOnly, ChainFirewall)
	w.filter.Add(ChainInput, newOnly, ChainServices)
	w.filter.Add(ChainInput, "-j", ChainNodePorts)
	w.filter.Add(ChainInput, newOnly, ChainFilter)
	w.filter.Add(ChainForward, xtables.Comment("berth forwarding rules"), "-m mark --mark", w.mark, "-j ACCEPT")
	w.filter.Add(ChainForward, xtables.Comment("berth forwarding conntrack rule"), "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
}

// writeTail writes what follows every service's rules: the jumps to the
// node ports, the address guard, the postrouting masquerade.
func (w *ruleWriter) writeTail() {
	for _, a := range w.nodePortAddrs {
		w.nat.Add(ChainServices, "-d", w.host(a), xtables.Comment("berth IPVS node ports"), "-j", ChainNodePorts)
	}
	for _, g := range w.guard {
		w.filter.Add(ChainFilter, "-d", w.host(g.addr), "-p", g.proto, "-m", g.proto, "--dport", g.dport, "-j RETURN")
	}
	addrs := make([]netip.Addr, 0, len(w.guarded))
	for a := range w.guarded {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, a := range addrs {
		w.filter.Add(ChainFilter, "-d", w.host(a), xtables.Comment("berth IPVS: only service ports are open on service addresses"),
			"-j REJECT --reject-with", w.rejectWith)
	}
	hairpins := make([]string, 0, len(w.hairpins))
	for h := range w.hairpins {
		hairpins = append(hairpins, h)
	}
	slices.Sort(hairpins)
	for _, h := range hairpins {
		w.nat.Add(ChainPostrouting, h)
	}
	w.nat.Add(ChainPostrouting, "-m mark ! --mark", w.mark, "-j RETURN")
	w.nat.Add(ChainPostrouting, "-j MARK --set-xmark", w.markOff)
	w.nat.Add(ChainPostrouting, xtables.Comment("berth service traffic requiring SNAT"), "-j MASQUERADE --random-fully")
}

// port is one service port with its addresses formatted for the family.
type port struct {
	sp                      *proxy.ServicePort
	name, proto, dport      string
	clusterIPs, externalIPs []netip.Addr
	lbIPs                   []netip.Addr
	// hasExternal tells whether the external virtual services have
	// destinations (the external endpoints, or for externalTrafficPolicy
	// Local without a local one, the cluster endpoints).
	hasExternal bool
	// fallback: Local policy without local endpoint, the virtual services
	// hold the cluster endpoints for the node and its pods only.
	fallback bool
}

func (w *ruleWriter) portOf(sp *proxy.ServicePort) *port {
	p := &port{sp: sp, name: xtables.CommentText(sp.Name.String()), proto: strings.ToLower(string(sp.Protocol)), dport: strconv.Itoa(int(sp.Port))}
	pick := func(addrs []netip.Addr) []netip.Addr {
		var out []netip.Addr
		for _, a := range addrs {
			if a, ok := inFamily(a, w.family); ok && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
		return out
	}
	p.clusterIPs, p.externalIPs, p.lbIPs = pick(sp.ClusterIPs), pick(sp.ExternalIPs), pick(sp.LoadBalancerIPs)
	hasCluster := hasEndpoints(sp.ClusterEndpoints, w.family)
	p.hasExternal = hasEndpoints(sp.ExternalEndpoints, w.family)
	if sp.ExternalLocal && !p.hasExternal && hasCluster {
		p.fallback, p.hasExternal = true, true
	}
	return p
}

func hasEndpoints(eps []proxy.Endpoint, f proxy.Family) bool {
	return slices.ContainsFunc(eps, func(e proxy.Endpoint) bool { _, ok := inFamily(e.IP, f); return ok })
}

// writeService writes one service port's rules.
func (w *ruleWriter) writeService(p *port) {
	sp := p.sp
	for _, ip := range p.clusterIPs {
		w.clusterMasquerade(p, ip)
		w.nat.Add(ChainServices, "-d", w.host(ip), "-p", p.proto, xtables.Comment(p.name+" cluster IP"), "-m", p.proto, "--dport", p.dport, "-j ACCEPT")
		if !hasEndpoints(sp.ClusterEndpoints, w.family) {
			w.refuse(p, ip, p.dport, KindClusterIP, "REJECT")
		}
		w.open(ip, p)
	}
	for _, x := range []struct {
		kind Kind
		text string
		ips  []netip.Addr
	}{{KindExternalIP, " external IP", p.externalIPs}, {KindLoadBalancerIP, " loadbalancer IP", p.lbIPs}} {
		for _, ip := range x.ips {
			w.externalMasquerade(p, ChainServices, "-d "+w.host(ip), p.name+x.text, p.dport)
			w.nat.Add(ChainServices, "-d", w.host(ip), "-p", p.proto, xtables.Comment(p.name+x.text), "-m", p.proto, "--dport", p.dport, "-j ACCEPT")
			w.externalRefusal(p, ip, p.dport, x.kind)
			w.open(ip, p)
		}
	}
	if x := p.lbIPs; len(x) > 0 && len(sp.SourceRanges) > 0 {
		w.firewall(p)
	}
	if np := sp.NodePort; np != 0 {
		dport := strconv.Itoa(int(np))
		w.externalMasquerade(p, ChainNodePorts, "", p.name+" node port", dport)
		w.externalRefusal(p, netip.Addr{}, dport, KindNodePort)
		if p.hasExternal {
			w.filter.Add(ChainNodePorts, "-p", p.proto, xtables.Comment(p.name+" node port"), "-m addrtype --dst-type LOCAL",
				"-m", p.proto, "--dport", dport, "-j ACCEPT")
		}
	}
	if hc := sp.HealthCheckNodePort; hc != 0 {
		w.filter.Add(ChainNodePorts, "-p tcp", xtables.Comment(p.name+" health check node port"), "-m tcp --dport", strconv.Itoa(int(hc)), "-j ACCEPT")
	}
	w.collectHairpins(p)
}

// open records a service port of an address on the dummy for the guard.
func (w *ruleWriter) open(a netip.Addr, p *port) {
	w.guarded[a] = true
	g := guardEntry{addr: a, proto: p.proto, dport: p.dport}
	if !w.opened[g] {
		w.opened[g] = true
		w.guard = append(w.guard, g)
	}
}

// clusterMasquerade marks cluster-IP traffic for masquerade: all of it
// (masqueradeAll), or what does not come from a cluster CIDR (a router
// sending the service range to this node), as kube-proxy. Without either,
// only the node's own connections are marked: their source is the cluster
// IP itself (the dummy interface holds it), which the endpoint could not
// answer.
func (w *ruleWriter) clusterMasquerade(p *port, ip netip.Addr) {
	text, d := xtables.Comment(p.name+" cluster IP"), w.host(ip)
	tail := []string{"-p", p.proto, text, "-m", p.proto, "--dport", p.dport, "-j"}
	switch {
	case w.masqAll:
		w.nat.Add(ChainServices, append([]string{"-d", d}, append(tail, ChainMarkMasq)...)...)
	case len(w.clusterCIDRs) == 1:
		w.nat.Add(ChainServices, append([]string{"! -s", w.clusterCIDRs[0], "-d", d}, append(tail, ChainMarkMasq)...)...)
	case len(w.clusterCIDRs) > 1:
		w.nat.Add(ChainServices, append([]string{"-d", d}, append(tail, ChainMarkOffCluster)...)...)
	default:
		w.nat.Add(ChainServices, append([]string{"-s", d, "-d", d}, append(tail, ChainMarkMasq)...)...)
	}
}

// externalMasquerade marks traffic to an external destination (dst is
// "-d ADDR", or "" for a node port in ChainNodePorts): all of it for
// externalTrafficPolicy Cluster, since the endpoint may be on another
// node; for Local, which keeps the client's address, only the node's own
// connections, whose source (the virtual address) the endpoint could not
// answer.
func (w *ruleWriter) externalMasquerade(p *port, chain, dst, text, dport string) {
	args := []string{}
	if dst != "" {
		args = append(args, dst)
	}
	args = append(args, "-p", p.proto, xtables.Comment(text))
	if p.sp.ExternalLocal {
		args = append(args, "-m addrtype --src-type LOCAL")
	}
	w.nat.Add(chain, append(args, "-m", p.proto, "--dport", dport, "-j", ChainMarkMasq)...)
}

// refuse writes a filter rule refusing new connections to one destination
// (ip invalid: the node port on local addresses).
func (w *ruleWriter) refuse(p *port, ip netip.Addr, dport string, kind Kind, verdict string) {
	text := p.name + " has no endpoints"
	target := "-j REJECT --reject-with " + w.rejectWith
	if verdict == "DROP" {
		text, target = p.name+" has no local endpoints", "-j DROP"
	}
	if kind == KindNodePort {
		w.filter.Add(ChainServices, "-p", p.proto, xtables.Comment(text), "-m addrtype --dst-type LOCAL", "-m", p.proto, "--dport", dport, target)
		return
	}
	w.filter.Add(ChainServices, "-d", w.host(ip), "-p", p.proto, xtables.Comment(text), "-m", p.proto, "--dport", dport, target)
}

// externalRefusal refuses an external destination without endpoints for
// it: REJECT, or DROP for externalTrafficPolicy Local. With Local and only
// remote endpoints, the pods (cluster CIDRs) and the node may still use
// the cluster endpoints; everyone else is dropped.
func (w *ruleWriter) externalRefusal(p *port, ip netip.Addr, dport string, kind Kind) {
	switch {
	case p.hasExternal && !p.fallback:
		return
	case !p.sp.ExternalLocal:
		w.refuse(p, ip, dport, kind, "REJECT")
		return
	}
	if p.fallback {
		text := xtables.Comment(p.name + " pod and node traffic to external destinations")
		dst := []string{"-p", p.proto, text, "-m addrtype --dst-type LOCAL"}
		if kind != KindNodePort {
			dst = []string{"-d", w.host(ip), "-p", p.proto, text}
		}
		for _, c := range w.clusterCIDRs {
			w.filter.Add(ChainServices, append(append([]string{"-s", c}, dst...), "-m", p.proto, "--dport", dport, "-j RETURN")...)
		}
		w.filter.Add(ChainServices, append(dst, "-m addrtype --src-type LOCAL", "-m", p.proto, "--dport", dport, "-j RETURN")...)
	}
	w.refuse(p, ip, dport, kind, "DROP")
}

// firewall writes loadBalancerSourceRanges: the allowed sources return,
// the rest of the load-balancer traffic is dropped. Ranges only of the
// other family let nobody in.
func (w *ruleWriter) firewall(p *port) {
	var ranges []string
	fromNode := false
	for _, r := range p.sp.SourceRanges {
		if !r.IsValid() || r.Addr().Is4In6() || proxy.Of(r.Addr()) != w.family {
			continue
		}
		ranges = append(ranges, r.Masked().String())
		fromNode = fromNode || slices.ContainsFunc(w.nodeIPs, r.Contains)
	}
	text := xtables.Comment(p.name + " loadbalancer IP")
	for _, ip := range p.lbIPs {
		d := w.host(ip)
		for _, r := range ranges {
			w.filter.Add(ChainFirewall, "-s", r, "-d", d, "-p", p.proto, text, "-m", p.proto, "--dport", p.dport, "-j RETURN")
		}
		if fromNode {
			// A node reaching a load-balancer IP it holds does so from that IP.
			w.filter.Add(ChainFirewall, "-s", d, "-d", d, "-p", p.proto, text, "-m", p.proto, "--dport", p.dport, "-j RETURN")
		}
		w.filter.Add(ChainFirewall, "-d", d, "-p", p.proto, xtables.Comment(p.name+" traffic not in loadBalancerSourceRanges"),
			"-m", p.proto, "--dport", p.dport, "-j DROP")
	}
}

// collectHairpins records the hairpin masquerade of the port's local
// endpoints: an endpoint that reaches itself through the service gets its
// own address as the destination and could not answer un-NATed.
func (w *ruleWriter) collectHairpins(p *port) {
	for _, eps := range [][]proxy.Endpoint{p.sp.ClusterEndpoints, p.sp.ExternalEndpoints} {
		for _, ep := range eps {
			a, ok := inFamily(ep.IP, w.family)
			if !ok || !ep.Local {
				continue
			}
			h := w.host(a)
			rule := strings.Join([]string{"-s", h, "-d", h, "-p", p.proto, xtables.Comment("berth IPVS hairpin"),
				"-m", p.proto, "--dport", strconv.Itoa(int(ep.Port)), "-j MASQUERADE"}, " ")
			w.hairpins[rule] = true
		}
	}
}
