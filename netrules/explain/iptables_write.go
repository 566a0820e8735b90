package explain

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthnode/berth/netrules/iptables"
)

// Write prints the explanation for a person: per service port, its
// destinations and what becomes of them, its endpoints in turn, then its
// policies, each with the chain that holds it.
func (e *Explanation) Write(w io.Writer) error {
	return writePorts(w, len(e.Ports), func(b *strings.Builder, i int) bool {
		p := &e.Ports[i]
		e.writePort(b, p)
		return len(p.Cluster.Endpoints)+len(p.External.Endpoints.Endpoints) > 0
	}, explainFooter)
}

const explainFooter = `
In turn: each new connection (its first packet) takes the next endpoint, counted per node and
per chain since berth last wrote the chain; connections that session affinity sends back to
their endpoint do not take a turn.
Hairpin: each SEP chain masquerades an endpoint's connections to itself through the service,
so that its replies come back through the node.
`

// String returns what Write prints.
func (e *Explanation) String() string { return text(e) }

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
			strings.Join(sources, ", "), f.Chain, iptables.ChainFirewall)
	}
	if hc := p.HealthCheckNodePort; hc != 0 {
		fmt.Fprintf(b, "  health check node port: %d, TCP, served by berth (accepted in filter %s)\n", hc, iptables.ChainNodePorts)
	}
}
