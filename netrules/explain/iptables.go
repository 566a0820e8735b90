package explain

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

// Explain tells, for people, what the iptables backend's rules in save (iptables-save output
// of the nat and filter tables, by table) do for service: "namespace/name"
// for all its ports, "namespace/name:port" for one. It reads the chains and
// comments netrules/iptables renders and trusts no State: what it cannot account for it
// reports as a note rather than leave out. It returns an error wrapping
// ErrNotProgrammed when no rule is for the service.
func Explain(save map[xtables.Table][]byte, service string) (*Explanation, error) {
	ns, onePort, err := parseService(service)
	if err != nil {
		return nil, err
	}
	x := &explainer{service: service, onePort: onePort, tables: readSaved(save, iptables.ChainPrefix), ports: map[portID]*PortRules{}}
	nat, filter := x.table(xtables.TableNAT), x.table(xtables.TableFilter)
	if !nat.chains[iptables.ChainServices] && !filter.chains[iptables.ChainServices] {
		return nil, fmt.Errorf("%w for %s: the nat table has no %s chain, so berth's iptables proxy has not synced here",
			ErrNotProgrammed, service, iptables.ChainServices)
	}
	x.readEntries(nat)
	x.readRefusals(filter)
	if len(x.ports) == 0 {
		return nil, x.notFound(ns)
	}
	x.readHealthChecks(filter)
	e := &Explanation{Service: service, NodePortAddresses: x.nodePortAddresses()}
	for _, id := range sortedPorts(x.ports) {
		p := x.ports[id]
		x.readChains(p)
		e.Ports = append(e.Ports, *p)
	}
	return e, nil
}

// explainer accumulates what the rules say about a service.
type explainer struct {
	service string
	// onePort tells that service names a port ("ns/name:port").
	onePort bool
	tables  map[xtables.Table]*savedTable
	ports   map[portID]*PortRules
}

func (x *explainer) table(t xtables.Table) *savedTable {
	if x.tables[t] == nil {
		x.tables[t] = newSavedTable()
	}
	return x.tables[t]
}

// owner returns the service port name of a comment made of a name and one
// of the suffixes, if the name is the service's (or one of its ports').
func (x *explainer) owner(comment string, suffixes ...string) (string, bool) {
	for _, suffix := range suffixes {
		name, ok := strings.CutSuffix(comment, suffix)
		if ok && (name == x.service || !x.onePort && strings.HasPrefix(name, x.service+":")) {
			return name, true
		}
	}
	return "", false
}

// port returns the PortRules of the service port, made on first use.
func (x *explainer) port(name, proto string) *PortRules {
	id := portID{name: name, proto: proxy.Protocol(strings.ToUpper(proto))}
	if x.ports[id] == nil {
		x.ports[id] = &PortRules{Name: name, Protocol: id.proto}
	}
	return x.ports[id]
}

// readEntries reads the service's entry rules in nat: the jumps from
// BERTH-SERVICES (cluster, external and load-balancer IPs) and
// BERTH-NODEPORTS to its chains.
func (x *explainer) readEntries(nat *savedTable) {
	kinds := map[string]DestinationKind{" cluster IP": KindClusterIP, " external IP": KindExternalIP, " loadbalancer IP": KindLoadBalancerIP}
	for _, r := range nat.rules[iptables.ChainServices] {
		for suffix, kind := range kinds {
			if name, ok := x.owner(r.opts["--comment"], suffix); ok {
				p := x.port(name, r.opts["-p"])
				p.Destinations = append(p.Destinations, Destination{Kind: kind, IP: addr(r.opts["-d"]),
					Port: portOf(r.opts["--dport"]), Chain: r.opts["-j"]})
			}
		}
	}
	for _, r := range nat.rules[iptables.ChainNodePorts] {
		if name, ok := x.owner(r.opts["--comment"], ""); ok {
			p := x.port(name, r.opts["-p"])
			p.Destinations = append(p.Destinations, Destination{Kind: KindNodePort, Port: portOf(r.opts["--dport"]), Chain: r.opts["-j"]})
		}
	}
}

// readRefusals reads the service's REJECT and DROP rules in filter (no
// endpoints, no local endpoints, load-balancer sources not let through)
// into the destinations nat gave, or new ones.
func (x *explainer) readRefusals(filter *savedTable) {
	for _, chain := range []string{iptables.ChainServices, iptables.ChainExternalServices, iptables.ChainFirewall} {
		for _, r := range filter.rules[chain] {
			name, ok := x.owner(r.opts["--comment"], " has no endpoints", " has no local endpoints")
			if chain == iptables.ChainFirewall {
				owner, _, _ := strings.Cut(r.opts["--comment"], " traffic not accepted by ")
				name, ok = x.owner(owner, "")
			}
			if !ok {
				continue
			}
			d := Destination{Kind: KindExternalOrLoadBalancerIP, IP: addr(r.opts["-d"]), Port: portOf(r.opts["--dport"]),
				Verdict: r.opts["-j"], VerdictChain: chain}
			if chain == iptables.ChainServices {
				d.Kind = KindClusterIP
			} else if !d.IP.IsValid() {
				d.Kind = KindNodePort
			}
			p := x.port(name, r.opts["-p"])
			i := slices.IndexFunc(p.Destinations, func(o Destination) bool {
				external := o.Kind == KindExternalIP || o.Kind == KindLoadBalancerIP
				return o.IP == d.IP && o.Port == d.Port && o.Verdict == "" &&
					(o.Kind == d.Kind || external && d.Kind == KindExternalOrLoadBalancerIP)
			})
			if i < 0 {
				p.Destinations = append(p.Destinations, d)
				continue
			}
			p.Destinations[i].Verdict, p.Destinations[i].VerdictChain = d.Verdict, d.VerdictChain
		}
	}
}

// readHealthChecks reads the health-check node ports filter accepts. The
// health check is HTTP over TCP whatever the port's protocol, so it is
// matched by name alone.
func (x *explainer) readHealthChecks(filter *savedTable) {
	for _, r := range filter.rules[iptables.ChainNodePorts] {
		name, _ := x.owner(r.opts["--comment"], " health check node port")
		for id, p := range x.ports {
			if name != "" && id.name == name {
				p.HealthCheckNodePort = portOf(r.opts["--dport"])
			}
		}
	}
}

// notFound builds the error for a service without rules, naming the
// services of its namespace that have some.
func (x *explainer) notFound(ns string) error {
	var names []string
	for _, t := range []xtables.Table{xtables.TableNAT, xtables.TableFilter} {
		for _, r := range x.table(t).rules[iptables.ChainServices] {
			svc, _, _ := strings.Cut(r.opts["--comment"], " ")
			svc, _, _ = strings.Cut(svc, ":")
			if name, ok := strings.CutPrefix(svc, ns+"/"); ok && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	what := "no service of namespace " + ns + " has any"
	if len(names) > 0 {
		what = "services of namespace " + ns + " that have some: " + strings.Join(names, ", ")
	}
	return fmt.Errorf("%w for %s: no berth rule in nat or filter is for it "+
		"(a service gets rules once it has a cluster IP; a headless one never does); %s",
		ErrNotProgrammed, x.service, what)
}

// nodePortAddresses describes the destinations of the jumps from nat
// BERTH-SERVICES to BERTH-NODEPORTS.
func (x *explainer) nodePortAddresses() string {
	var only, except []string
	for _, r := range x.table(xtables.TableNAT).rules[iptables.ChainServices] {
		if r.opts["-j"] != iptables.ChainNodePorts {
			continue
		}
		if v, ok := r.opts["!-d"]; ok {
			except = append(except, v)
		} else if v, ok := r.opts["-d"]; ok {
			only = append(only, v)
		} else {
			return "every local address"
		}
	}
	switch {
	case len(only) > 0:
		return "local addresses in " + strings.Join(only, ", ")
	case len(except) > 0:
		return "every local address except " + strings.Join(except, ", ")
	}
	return "no address: nat " + iptables.ChainServices + " has no jump to " + iptables.ChainNodePorts
}

// readChains follows the service port's entry rules into its own chains.
func (x *explainer) readChains(p *PortRules) {
	for _, d := range p.Destinations {
		switch {
		case d.Chain == "":
		case d.Kind == KindClusterIP && p.Cluster.Chain == "":
			p.Cluster.Chain = d.Chain
		case strings.HasPrefix(d.Chain, iptables.PrefixFW):
			p.Firewall.Chain = d.Chain
		case d.Kind != KindClusterIP && p.External.Chain == "":
			p.External.Chain = d.Chain
		}
	}
	if p.Cluster.Chain != "" {
		p.Cluster = x.readBalance(p, p.Cluster.Chain, true)
	}
	if p.Firewall.Chain != "" {
		x.readFirewall(p)
	}
	if p.External.Chain != "" {
		x.readExternal(p)
	}
}

// note adds a note once (a SEP chain is read for each balance using it).
func (p *PortRules) note(format string, args ...any) {
	if n := fmt.Sprintf(format, args...); !slices.Contains(p.Notes, n) {
		p.Notes = append(p.Notes, n)
	}
}

// exists notes a chain that a rule jumps to but the nat table lacks.
func (x *explainer) exists(p *PortRules, chain string) bool {
	if !x.table(xtables.TableNAT).chains[chain] {
		p.note("chain %s is jumped to but missing from the nat table", chain)
		return false
	}
	return true
}

// readBalance reads an SVC (cluster) or SVX chain: masquerade rules (SVC
// only), affinity checks, then the round robin.
func (x *explainer) readBalance(p *PortRules, chain string, cluster bool) Balance {
	b := Balance{Chain: chain}
	if !x.exists(p, chain) {
		return b
	}
	var every []string
	for _, r := range x.table(xtables.TableNAT).rules[chain] {
		target := r.opts["-j"]
		switch {
		case cluster && target == iptables.ChainMarkMasq && r.has("!-s"):
			p.ClusterMasquerade.Except = append(p.ClusterMasquerade.Except, r.opts["!-s"])
		case cluster && target == iptables.ChainMarkMasq && !r.has("-s"):
			p.ClusterMasquerade.All = true
		case cluster && target == iptables.ChainMarkOffCluster:
			for _, r := range x.table(xtables.TableNAT).rules[iptables.ChainMarkOffCluster] {
				if r.opts["-j"] == "RETURN" {
					p.ClusterMasquerade.Except = append(p.ClusterMasquerade.Except, r.opts["-s"])
				}
			}
		case r.has("--rcheck") && strings.HasPrefix(target, iptables.PrefixSEP):
			secs, _ := strconv.Atoi(r.opts["--seconds"])
			p.AffinityTimeout = time.Duration(secs) * time.Second
		case strings.HasPrefix(target, iptables.PrefixSEP):
			ep := x.readEndpoint(p, target, r.opts["--comment"])
			b.Endpoints = append(b.Endpoints, ep)
			every = append(every, r.opts["--every"])
		default:
			p.note("rule not understood in %s: %s", chain, r.text)
		}
	}
	// Berth's round robin: rule i of n takes every (n-i)th connection, the
	// last one the rest.
	for i := range every {
		want := strconv.Itoa(len(every) - i)
		if i == len(every)-1 {
			want = ""
		}
		if every[i] != want {
			p.note("the rules of %s do not take the endpoints strictly in turn (--every %s on rule %d of %d); "+
				"the order shown is the rules' order", chain, every[i], i+1, len(every))
			break
		}
	}
	return b
}

// readEndpoint reads a SEP chain: the hairpin masquerade, the affinity
// record and the DNAT. When the chain is missing, the address comes from
// the comment of the rule that jumps to it ("ns/name:port -> ip:port").
func (x *explainer) readEndpoint(p *PortRules, chain, comment string) EndpointRule {
	ep := EndpointRule{Chain: chain}
	if _, dest, ok := strings.Cut(comment, " -> "); ok {
		ep.Addr, _ = netip.ParseAddrPort(dest)
	}
	if !x.exists(p, chain) {
		return ep
	}
	for _, r := range x.table(xtables.TableNAT).rules[chain] {
		switch {
		case r.opts["-j"] == iptables.ChainMarkMasq && r.has("-s"):
		case r.opts["-j"] == "DNAT":
			if a, err := netip.ParseAddrPort(r.opts["--to-destination"]); err == nil {
				ep.Addr = a
			}
		default:
			p.note("rule not understood in %s: %s", chain, r.text)
		}
	}
	return ep
}

// readFirewall reads an FW chain: the sources let through to the EXT
// chain; the rest falls through to be dropped in filter.
func (x *explainer) readFirewall(p *PortRules) {
	if !x.exists(p, p.Firewall.Chain) {
		return
	}
	for _, r := range x.table(xtables.TableNAT).rules[p.Firewall.Chain] {
		switch {
		case r.has("-s") && strings.HasPrefix(r.opts["-j"], iptables.PrefixEXT):
			p.External.Chain = r.opts["-j"]
			src, _ := netip.ParsePrefix(r.opts["-s"])
			if src.IsSingleIP() && slices.ContainsFunc(p.Destinations, func(d Destination) bool {
				return d.Kind == KindLoadBalancerIP && d.IP == src.Addr()
			}) {
				p.Firewall.Node = true
				continue
			}
			p.Firewall.Sources = append(p.Firewall.Sources, r.opts["-s"])
		case !r.has("-j"):
		default:
			p.note("rule not understood in %s: %s", p.Firewall.Chain, r.text)
		}
	}
}

// readExternal reads an EXT chain: masquerade, the externalTrafficPolicy
// Local short circuits to the cluster endpoints, then the external round
// robin.
func (x *explainer) readExternal(p *PortRules) {
	e := &p.External
	if !x.exists(p, e.Chain) {
		return
	}
	for _, r := range x.table(xtables.TableNAT).rules[e.Chain] {
		target, fromNode := r.opts["-j"], r.opts["--src-type"] == "LOCAL"
		toCluster := target != "" && target == p.Cluster.Chain
		switch {
		case target == iptables.ChainMarkMasq && fromNode:
			e.Local = true
		case target == iptables.ChainMarkMasq && !r.has("-s"):
			e.Masquerade = true
		case toCluster && fromNode:
			e.NodeToCluster, e.Local = true, true
		case toCluster && r.has("-s"):
			e.PodsToCluster, e.Local = append(e.PodsToCluster, r.opts["-s"]), true
		case toCluster && e.Endpoints.Chain == "":
			e.Endpoints = p.Cluster
		case strings.HasPrefix(target, iptables.PrefixSVX) && e.Endpoints.Chain == "":
			e.Endpoints = x.readBalance(p, target, false)
		default:
			p.note("rule not understood in %s: %s", e.Chain, r.text)
		}
	}
}
