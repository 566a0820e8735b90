package iptables

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

var (
	// ErrNotProgrammed is returned by Explain when the rules hold nothing
	// for the service asked about.
	ErrNotProgrammed = errors.New("nothing is programmed")
	// ErrBadServiceName is returned by Explain for a service name that is
	// not "namespace/name" or "namespace/name:port".
	ErrBadServiceName = errors.New(`service must be given as "namespace/name" or "namespace/name:port"`)
)

// DestinationKind is what an address and port of a service port is.
type DestinationKind string

// The kinds of destination.
const (
	KindClusterIP      DestinationKind = "cluster IP"
	KindNodePort       DestinationKind = "node port"
	KindExternalIP     DestinationKind = "external IP"
	KindLoadBalancerIP DestinationKind = "load-balancer IP"
	// KindExternalOrLoadBalancerIP: without endpoints, the rules for the
	// two read the same.
	KindExternalOrLoadBalancerIP DestinationKind = "external or load-balancer IP"
)

// Explanation is what berth's rules do for one service.
type Explanation struct {
	// Service is the service asked about: "namespace/name", or
	// "namespace/name:port" for one port.
	Service string
	// Ports are the service's ports that have rules, by name and protocol.
	Ports []PortRules
	// NodePortAddresses describes the local addresses node ports answer on.
	NodePortAddresses string
}

// PortRules is what the rules do for one port of the service.
type PortRules struct {
	// Name is "namespace/name:port", as in the rules' comments.
	Name string
	// Protocol is the port's protocol.
	Protocol proxy.Protocol
	// Destinations are the port's addresses and ports, in rule order.
	Destinations []Destination
	// Cluster is the round robin of cluster-IP traffic (the SVC chain).
	Cluster Balance
	// ClusterMasquerade is which cluster-IP traffic is masqueraded.
	ClusterMasquerade Masquerade
	// External is what the EXT chain does with external traffic.
	External External
	// Firewall is the loadBalancerSourceRanges check (the FW chain).
	Firewall Firewall
	// AffinityTimeout is the ClientIP session affinity timeout; 0 for none.
	AffinityTimeout time.Duration
	// HealthCheckNodePort is the eTP Local health check's node port; 0: none.
	HealthCheckNodePort uint16
	// Notes are what berth would not have written: missing chains, rules
	// not understood, a broken round robin.
	Notes []string
}

// Destination is one address and port of a service port and what its
// entry rules do with new connections.
type Destination struct {
	// Kind is what the destination is.
	Kind DestinationKind
	// IP is the address; invalid for a node port (see NodePortAddresses).
	IP netip.Addr
	// Port is the port.
	Port uint16
	// Chain is the nat chain the entry rule jumps to; "" when none.
	Chain string
	// Verdict is the REJECT or DROP of a filter rule for what nat left.
	Verdict string
	// VerdictChain is the filter chain holding the Verdict rule.
	VerdictChain string
}

// Balance is one chain's round robin over endpoints.
type Balance struct {
	// Chain is the SVC or SVX chain; "" for none.
	Chain string
	// Endpoints are in the order they take new connections.
	Endpoints []EndpointRule
}

// EndpointRule is one endpoint and the chain that DNATs to it.
type EndpointRule struct {
	// Addr is the DNAT destination.
	Addr netip.AddrPort
	// Chain is the endpoint's SEP chain.
	Chain string
}

// Masquerade is which traffic a chain marks for masquerade.
type Masquerade struct {
	// All tells that every connection is masqueraded (masqueradeAll).
	All bool
	// Except are the sources left alone, all others being masqueraded
	// (the cluster CIDRs); with neither, nothing is masqueraded.
	Except []string
}

// External is what the EXT chain does with traffic to the node port,
// external and load-balancer IPs.
type External struct {
	// Chain is the EXT chain; "" for none.
	Chain string
	// Masquerade: all of it is masqueraded (externalTrafficPolicy Cluster).
	Masquerade bool
	// Local tells that clients keep their address and only the node's own
	// traffic is masqueraded (externalTrafficPolicy: Local).
	Local bool
	// PodsToCluster are pod CIDRs whose traffic goes to the cluster endpoints.
	PodsToCluster []string
	// NodeToCluster: the node's own traffic goes to the cluster endpoints.
	NodeToCluster bool
	// Endpoints is the round robin of the rest: the cluster one, or SVX.
	Endpoints Balance
}

// Firewall is the loadBalancerSourceRanges check of the FW chain.
type Firewall struct {
	// Chain is the FW chain; "" for none.
	Chain string
	// Sources are the source ranges let through to the EXT chain.
	Sources []string
	// Node: the node, which reaches its load-balancer IP from that IP, is
	// let through (a source range holds a node IP).
	Node bool
}

// Explain tells, for people, what the rules in save (iptables-save output
// of the nat and filter tables, by table) do for service: "namespace/name"
// for all its ports, "namespace/name:port" for one. It reads the chains and
// comments Render writes and trusts no State: what it cannot account for it
// reports as a note rather than leave out. It returns an error wrapping
// ErrNotProgrammed when no rule is for the service.
func Explain(save map[xtables.Table][]byte, service string) (*Explanation, error) {
	ns, name, ok := strings.Cut(service, "/")
	if !ok || ns == "" || name == "" || strings.ContainsAny(name, "/ ") || strings.HasPrefix(name, ":") || strings.HasSuffix(name, ":") {
		return nil, fmt.Errorf("%w: %q", ErrBadServiceName, service)
	}
	x := &explainer{service: service, onePort: strings.Contains(name, ":"), tables: map[xtables.Table]*savedTable{}, ports: map[portID]*PortRules{}}
	for _, data := range save {
		x.parse(data)
	}
	nat, filter := x.table(xtables.TableNAT), x.table(xtables.TableFilter)
	if !nat.chains[ChainServices] && !filter.chains[ChainServices] {
		return nil, fmt.Errorf("%w for %s: the nat table has no %s chain, so berth's iptables proxy has not synced here",
			ErrNotProgrammed, service, ChainServices)
	}
	x.readEntries(nat)
	x.readRefusals(filter)
	if len(x.ports) == 0 {
		return nil, x.notFound(ns)
	}
	x.readHealthChecks(filter)
	e := &Explanation{Service: service, NodePortAddresses: x.nodePortAddresses()}
	for _, id := range slices.SortedFunc(maps.Keys(x.ports), func(a, b portID) int {
		return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(string(a.proto), string(b.proto)))
	}) {
		p := x.ports[id]
		x.readChains(p)
		e.Ports = append(e.Ports, *p)
	}
	return e, nil
}

// savedRule is one "-A" line of iptables-save output.
type savedRule struct {
	// opts are the rule's options (see RuleOptions).
	opts map[string]string
	// text is the rule as saved, after "-A CHAIN ".
	text string
}

func (r savedRule) has(opt string) bool { _, ok := r.opts[opt]; return ok }

// savedTable is a table's berth chains and their rules, in order.
type savedTable struct {
	chains map[string]bool
	rules  map[string][]savedRule
}

// portID identifies a service port: its comment name and protocol.
type portID struct {
	name  string
	proto proxy.Protocol
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
		x.tables[t] = &savedTable{chains: map[string]bool{}, rules: map[string][]savedRule{}}
	}
	return x.tables[t]
}

// parse reads iptables-save output of one or more tables; lines outside
// berth's chains are skipped.
func (x *explainer) parse(data []byte) {
	var t *savedTable
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "*"):
			t = x.table(xtables.Table(strings.TrimSpace(line[1:])))
		case t == nil:
		case strings.HasPrefix(line, ":"+ChainPrefix):
			name, _, _ := strings.Cut(line[1:], " ")
			t.chains[name] = true
		case strings.HasPrefix(line, "-A "+ChainPrefix):
			chain, rest, _ := strings.Cut(line[len("-A "):], " ")
			t.rules[chain] = append(t.rules[chain], savedRule{opts: RuleOptions(rest), text: rest})
		}
	}
}

// RuleOptions maps the options of a rule as iptables-save prints it (after
// "-A CHAIN") to their values ("" for a flag); a negated option is keyed "!" + option, and one that repeats (-m)
// keeps its last value. An option takes the next argument as its value
// unless that is an option itself; a comment always takes it. A
// double-quoted comment is one argument: berth's hold no quote or
// backslash to escape (commentText keeps them out).
func RuleOptions(s string) map[string]string {
	var args []string
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		end := strings.IndexByte(s, ' ')
		if s[0] == '"' {
			end = strings.IndexByte(s[1:], '"') + 2
		}
		if end <= 0 {
			end = len(s)
		}
		args, s = append(args, strings.Trim(s[:end], `"`)), s[end:]
	}
	opts := make(map[string]string, len(args)/2)
	for i := 0; i < len(args); i++ {
		key := args[i]
		if key == "!" && i+1 < len(args) {
			i++
			key = "!" + args[i]
		}
		val := ""
		if i+1 < len(args) && (key == "--comment" || !strings.HasPrefix(args[i+1], "-") && args[i+1] != "!") {
			i++
			val = args[i]
		}
		opts[key] = val
	}
	return opts
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

// addr reads the address of an "-s" or "-d" value ("ip/bits").
func addr(v string) netip.Addr {
	p, _ := netip.ParsePrefix(v)
	return p.Addr()
}

func portOf(v string) uint16 {
	n, _ := strconv.ParseUint(v, 10, 16)
	return uint16(n)
}

// readEntries reads the service's entry rules in nat: the jumps from
// BERTH-SERVICES (cluster, external and load-balancer IPs) and
// BERTH-NODEPORTS to its chains.
func (x *explainer) readEntries(nat *savedTable) {
	kinds := map[string]DestinationKind{" cluster IP": KindClusterIP, " external IP": KindExternalIP, " loadbalancer IP": KindLoadBalancerIP}
	for _, r := range nat.rules[ChainServices] {
		for suffix, kind := range kinds {
			if name, ok := x.owner(r.opts["--comment"], suffix); ok {
				p := x.port(name, r.opts["-p"])
				p.Destinations = append(p.Destinations, Destination{Kind: kind, IP: addr(r.opts["-d"]),
					Port: portOf(r.opts["--dport"]), Chain: r.opts["-j"]})
			}
		}
	}
	for _, r := range nat.rules[ChainNodePorts] {
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
	for _, chain := range []string{ChainServices, ChainExternalServices, ChainFirewall} {
		for _, r := range filter.rules[chain] {
			name, ok := x.owner(r.opts["--comment"], " has no endpoints", " has no local endpoints")
			if chain == ChainFirewall {
				owner, _, _ := strings.Cut(r.opts["--comment"], " traffic not accepted by ")
				name, ok = x.owner(owner, "")
			}
			if !ok {
				continue
			}
			d := Destination{Kind: KindExternalOrLoadBalancerIP, IP: addr(r.opts["-d"]), Port: portOf(r.opts["--dport"]),
				Verdict: r.opts["-j"], VerdictChain: chain}
			if chain == ChainServices {
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
	for _, r := range filter.rules[ChainNodePorts] {
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
		for _, r := range x.table(t).rules[ChainServices] {
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
	for _, r := range x.table(xtables.TableNAT).rules[ChainServices] {
		if r.opts["-j"] != ChainNodePorts {
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
	return "no address: nat " + ChainServices + " has no jump to " + ChainNodePorts
}

// readChains follows the service port's entry rules into its own chains.
func (x *explainer) readChains(p *PortRules) {
	for _, d := range p.Destinations {
		switch {
		case d.Chain == "":
		case d.Kind == KindClusterIP && p.Cluster.Chain == "":
			p.Cluster.Chain = d.Chain
		case strings.HasPrefix(d.Chain, prefixFW):
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
		case cluster && target == ChainMarkMasq && r.has("!-s"):
			p.ClusterMasquerade.Except = append(p.ClusterMasquerade.Except, r.opts["!-s"])
		case cluster && target == ChainMarkMasq && !r.has("-s"):
			p.ClusterMasquerade.All = true
		case cluster && target == ChainMarkOffCluster:
			for _, r := range x.table(xtables.TableNAT).rules[ChainMarkOffCluster] {
				if r.opts["-j"] == "RETURN" {
					p.ClusterMasquerade.Except = append(p.ClusterMasquerade.Except, r.opts["-s"])
				}
			}
		case r.has("--rcheck") && strings.HasPrefix(target, prefixSEP):
			secs, _ := strconv.Atoi(r.opts["--seconds"])
			p.AffinityTimeout = time.Duration(secs) * time.Second
		case strings.HasPrefix(target, prefixSEP):
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
		case r.opts["-j"] == ChainMarkMasq && r.has("-s"):
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
		case r.has("-s") && strings.HasPrefix(r.opts["-j"], prefixEXT):
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
		case target == ChainMarkMasq && fromNode:
			e.Local = true
		case target == ChainMarkMasq && !r.has("-s"):
			e.Masquerade = true
		case toCluster && fromNode:
			e.NodeToCluster, e.Local = true, true
		case toCluster && r.has("-s"):
			e.PodsToCluster, e.Local = append(e.PodsToCluster, r.opts["-s"]), true
		case toCluster && e.Endpoints.Chain == "":
			e.Endpoints = p.Cluster
		case strings.HasPrefix(target, prefixSVX) && e.Endpoints.Chain == "":
			e.Endpoints = x.readBalance(p, target, false)
		default:
			p.note("rule not understood in %s: %s", e.Chain, r.text)
		}
	}
}

// Write prints the explanation for a person: per service port, its
// destinations and what becomes of them, its endpoints in turn, then its
// policies, each with the chain that holds it.
func (e *Explanation) Write(w io.Writer) error {
	var b strings.Builder
	endpoints := false
	for i := range e.Ports {
		p := &e.Ports[i]
		if i > 0 {
			b.WriteByte('\n')
		}
		e.writePort(&b, p)
		endpoints = endpoints || len(p.Cluster.Endpoints)+len(p.External.Endpoints.Endpoints) > 0
	}
	if endpoints {
		b.WriteString(explainFooter)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

const explainFooter = `
In turn: each new connection (its first packet) takes the next endpoint, counted per node and
per chain since berth last wrote the chain; connections that session affinity sends back to
their endpoint do not take a turn.
Hairpin: each SEP chain masquerades an endpoint's connections to itself through the service,
so that its replies come back through the node.
`

// String returns what Write prints.
func (e *Explanation) String() string {
	var b strings.Builder
	_ = e.Write(&b)
	return b.String()
}

func (e *Explanation) writePort(b *strings.Builder, p *PortRules) {
	fmt.Fprintf(b, "%s (%s)\n", p.Name, p.Protocol)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	nodePort := false
	for _, d := range p.Destinations {
		dest := netip.AddrPortFrom(d.IP, d.Port).String()
		if d.Kind == KindNodePort {
			dest, nodePort = "*:"+strconv.Itoa(int(d.Port)), true
		}
		where := d.Chain
		if d.Verdict != "" {
			where = strings.TrimPrefix(where+", filter "+d.VerdictChain, ", ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t→ %s\t%s\n", dest, d.Kind, p.fate(d), where)
	}
	_ = tw.Flush()
	p.writeEndpoints(b)
	p.writePolicies(b)
	if nodePort {
		fmt.Fprintf(b, "  node ports answer on %s\n", e.NodePortAddresses)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(b, "  note: %s\n", n)
	}
}

// fate tells what becomes of a new connection to d.
func (p *PortRules) fate(d Destination) string {
	switch {
	case d.Chain == "" && d.Verdict == "DROP":
		return "dropped: no local endpoints"
	case d.Chain == "":
		return "rejected: no endpoints"
	case d.Kind == KindClusterIP:
		s := count(p.Cluster, "endpoint")
		if p.AffinityTimeout > 0 {
			s += ", with session affinity"
		}
		return s
	}
	e := p.External
	var s string
	switch {
	case e.Chain == "":
		s = "nowhere: no external chain"
	case e.Endpoints.Chain == "" && d.Verdict == "DROP":
		s = "pods and this node: the cluster endpoints; others dropped: no local endpoints"
	case e.Endpoints.Chain == p.Cluster.Chain:
		s = "the same endpoints"
	case e.Local:
		s = count(e.Endpoints, "local endpoint")
	default:
		s = count(e.Endpoints, "endpoint")
	}
	if e.Masquerade {
		s += ", masqueraded"
	}
	if e.Local && e.Endpoints.Chain != "" {
		s += ", client address kept"
	}
	if d.Chain == p.Firewall.Chain {
		s = "allowed sources only, then " + s
	}
	return s
}

// count says how many endpoints a balance has.
func count(b Balance, kind string) string {
	if n := len(b.Endpoints); n != 1 {
		return fmt.Sprintf("%d %ss, in turn", n, kind)
	}
	return "1 " + kind
}

// writeEndpoints lists the cluster endpoints and, when they differ, the
// external ones, marking those the rules show are on this node (the
// externalTrafficPolicy Local ones).
func (p *PortRules) writeEndpoints(b *strings.Builder) {
	ext, local := p.External.Endpoints, map[netip.AddrPort]bool{}
	for _, ep := range ext.Endpoints {
		local[ep.Addr] = p.External.Local
	}
	shared, noun := ext.Chain == "" || ext.Chain == p.Cluster.Chain, "endpoint"
	if !shared {
		noun = "cluster IP endpoint"
	}
	if p.Cluster.Chain != "" {
		writeBalance(b, noun, "", p.Cluster, local)
	}
	if shared {
		return
	}
	qualifier := ""
	if p.External.Local {
		qualifier = ", this node's only"
	}
	writeBalance(b, "external endpoint", qualifier, ext, nil)
}

// writeBalance lists a balance's endpoints under a title made of the noun
// (plural when need be) and the qualifier.
func writeBalance(b *strings.Builder, noun, qualifier string, bal Balance, local map[netip.AddrPort]bool) {
	if len(bal.Endpoints) == 1 {
		fmt.Fprintf(b, "  %s%s (%s):\n", noun, qualifier, bal.Chain)
	} else {
		fmt.Fprintf(b, "  %ss%s, in turn per new connection (%s):\n", noun, qualifier, bal.Chain)
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for i, ep := range bal.Endpoints {
		mark := ""
		if local[ep.Addr] {
			mark = "\tthis node"
		}
		fmt.Fprintf(tw, "    %d. %s\t%s%s\n", i+1, ep.Addr, ep.Chain, mark)
	}
	_ = tw.Flush()
}

// writePolicies prints session affinity, masquerade, the traffic policy,
// the source ranges and the health check.
func (p *PortRules) writePolicies(b *strings.Builder) {
	if t := p.AffinityTimeout; t > 0 {
		fmt.Fprintf(b, "  session affinity: ClientIP, %ds (%s): a client whose last new connection is that recent goes\n"+
			"    back to the same endpoint without taking a turn (checked in the SVC/SVX chain, recorded in the SEP chains)\n",
			int64(t/time.Second), t)
	} else if p.Cluster.Chain != "" || p.External.Endpoints.Chain != "" {
		b.WriteString("  session affinity: none\n")
	}
	if m, c := p.ClusterMasquerade, p.Cluster.Chain; c != "" {
		what := "none (no cluster CIDR to tell off-cluster traffic by)"
		if m.All {
			what = "all traffic (masqueradeAll; " + c + ")"
		} else if len(m.Except) > 0 {
			what = "traffic from outside " + strings.Join(m.Except, ", ") + " (" + c + ")"
		}
		fmt.Fprintf(b, "  cluster IP masquerade: %s\n", what)
	}
	if e := p.External; e.Local {
		fmt.Fprintf(b, "  external traffic policy: Local: clients keep their address and reach this node's endpoints only (%s)\n", e.Chain)
		var who []string
		if len(e.PodsToCluster) > 0 {
			who = append(who, "pods in "+strings.Join(e.PodsToCluster, ", "))
		}
		if e.NodeToCluster {
			who = append(who, "this node (masqueraded)")
		}
		if len(who) > 0 {
			fmt.Fprintf(b, "    but traffic from %s goes to the cluster endpoints\n", strings.Join(who, " and from "))
		}
	} else if e.Masquerade {
		fmt.Fprintf(b, "  external traffic policy: Cluster: masqueraded, so that replies come back through this node (%s)\n", e.Chain)
	}
	if f := p.Firewall; f.Chain != "" {
		sources := slices.Clone(f.Sources)
		if f.Node {
			sources = append(sources, "this node (from its load-balancer IP)")
		}
		fmt.Fprintf(b, "  load-balancer source ranges: %s; other sources dropped (%s, filter %s)\n",
			strings.Join(sources, ", "), f.Chain, ChainFirewall)
	}
	if hc := p.HealthCheckNodePort; hc != 0 {
		fmt.Fprintf(b, "  health check node port: %d, TCP, served by berth (accepted in filter %s)\n", hc, ChainNodePorts)
	}
}
