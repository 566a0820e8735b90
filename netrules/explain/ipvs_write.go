package explain

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthnode/berth/netrules/ipvs"
)

// Write prints the explanation for a person: per service port, its
// destinations and what becomes of them, the real servers of each virtual
// service with weights and connections, then its policies with the chain
// that holds each.
func (e *IPVSExplanation) Write(w io.Writer) error {
	return writePorts(w, len(e.Ports), func(b *strings.Builder, i int) bool {
		e.writePort(b, &e.Ports[i])
		return true
	}, ipvsFooter)
}

const ipvsFooter = `
Scheduling: IPVS picks each new connection's real server by the virtual service's scheduler
(rr: in turn, per virtual service, skipping weight 0); persistence sends a client back to its
server for the timeout after its last connection. Weight 0: draining, no new connections.
Hairpin: nat BERTH-IPVS-POSTROUTING masquerades a local endpoint's connections to itself.
`

// String returns what Write prints.
func (e *IPVSExplanation) String() string { return text(e) }

func (e *IPVSExplanation) writePort(b *strings.Builder, p *IPVSPort) {
	fmt.Fprintf(b, "%s (%s)\n", p.Name, p.Protocol)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for _, d := range p.Destinations {
		fmt.Fprintf(tw, "  %s\t%s\t→ %s\n", netip.AddrPortFrom(d.Addr, d.Port), d.Kind, p.fate(d))
	}
	_ = tw.Flush()
	writeServers(b, p)
	p.writePolicies(b)
	if slices.ContainsFunc(p.Destinations, func(d VirtualDestination) bool { return d.Kind == ipvs.KindNodePort }) {
		fmt.Fprintf(b, "  node ports answer on %s (nat %s)\n", addrList(e.NodePortAddresses), ipvs.ChainNodePorts)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(b, "  note: %s\n", n)
	}
}

func addrList(addrs []netip.Addr) string {
	if len(addrs) == 0 {
		return "no address"
	}
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// fate tells what becomes of a new connection to d.
func (p *IPVSPort) fate(d VirtualDestination) string {
	var s string
	switch {
	case d.Verdict == "REJECT":
		return "rejected: no endpoints (filter " + ipvs.ChainServices + ")"
	case d.Verdict == "DROP" && len(p.PodsToCluster) > 0:
		s = "pods and this node only, others dropped: no local endpoints; "
	case d.Verdict == "DROP":
		return "dropped: no local endpoints (filter " + ipvs.ChainServices + ")"
	}
	if d.Virtual == nil {
		return s + "no virtual service"
	}
	live := 0
	for _, r := range d.Destinations {
		if r.Weight > 0 {
			live++
		}
	}
	s += fmt.Sprintf("%d real server", live)
	if live != 1 {
		s += "s"
	}
	s += ", " + d.Virtual.Scheduler
	if d.Virtual.Flags&ipvs.FlagPersistent != 0 {
		s += ", persistent"
	}
	if d.Kind != ipvs.KindClusterIP && p.ExternalMasquerade {
		s += ", masqueraded"
	}
	if d.Kind != ipvs.KindClusterIP && p.ExternalLocal {
		s += ", client address kept"
	}
	if d.Kind == ipvs.KindLoadBalancerIP && p.Firewall {
		s = "allowed sources only, then " + s
	}
	return s
}

// writeServers lists the real servers of each distinct set of virtual
// services that share them.
func writeServers(b *strings.Builder, p *IPVSPort) {
	type group struct {
		virtuals []string
		sched    string
		dests    []ipvs.Destination
	}
	var groups []*group
	for _, d := range p.Destinations {
		if d.Virtual == nil {
			continue
		}
		i := slices.IndexFunc(groups, func(g *group) bool {
			return g.sched == d.Virtual.Scheduler && slices.Equal(g.dests, d.Destinations)
		})
		if i < 0 {
			groups = append(groups, &group{sched: d.Virtual.Scheduler, dests: d.Destinations})
			i = len(groups) - 1
		}
		groups[i].virtuals = append(groups[i].virtuals, d.Virtual.String())
	}
	for _, g := range groups {
		fmt.Fprintf(b, "  real servers of %s (scheduler %s):\n", strings.Join(g.virtuals, ", "), g.sched)
		if len(g.dests) == 0 {
			b.WriteString("    none\n")
			continue
		}
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		for _, r := range g.dests {
			mark := ""
			if r.Weight == 0 {
				mark = "\tdraining"
			}
			fmt.Fprintf(tw, "    %s\tweight %d\tactive %d\tinactive %d%s\n", r.AddrPort(), r.Weight,
				r.ActiveConnections, r.InactiveConnections, mark)
		}
		_ = tw.Flush()
	}
}

// writePolicies prints persistence, masquerade, the traffic policy, the
// source ranges and the health check.
func (p *IPVSPort) writePolicies(b *strings.Builder) {
	i := slices.IndexFunc(p.Destinations, func(d VirtualDestination) bool { return d.Virtual != nil })
	if i >= 0 {
		if v := p.Destinations[i].Virtual; v.Flags&ipvs.FlagPersistent != 0 {
			t := time.Duration(v.Timeout) * time.Second
			fmt.Fprintf(b, "  session affinity: ClientIP, %ds (%s): IPVS persistence\n", v.Timeout, t)
		} else {
			b.WriteString("  session affinity: none\n")
		}
	}
	if m := p.ClusterMasquerade; slices.ContainsFunc(p.Destinations, func(d VirtualDestination) bool { return d.Kind == ipvs.KindClusterIP }) {
		what := "none"
		switch {
		case m.All:
			what = "all traffic (masqueradeAll)"
		case len(m.Except) > 0:
			what = "traffic from outside " + strings.Join(m.Except, ", ")
		case m.NodeOnly:
			what = "this node's own connections only (no cluster CIDR to tell off-cluster traffic by)"
		}
		fmt.Fprintf(b, "  cluster IP masquerade: %s (nat %s)\n", what, ipvs.ChainServices)
	}
	switch {
	case p.ExternalLocal:
		fmt.Fprintf(b, "  external traffic policy: Local: clients keep their address; this node's own connections are masqueraded\n")
		if len(p.PodsToCluster) > 0 {
			fmt.Fprintf(b, "    no local endpoint: the virtual services hold the cluster endpoints for pods in %s and this node\n",
				strings.Join(p.PodsToCluster, ", "))
		}
	case p.ExternalMasquerade:
		fmt.Fprintf(b, "  external traffic policy: Cluster: masqueraded, so that replies come back through this node\n")
	}
	if p.Firewall {
		fmt.Fprintf(b, "  load-balancer source ranges: %s; other sources dropped (filter %s)\n",
			strings.Join(p.SourceRanges, ", "), ipvs.ChainFirewall)
	}
	if hc := p.HealthCheckNodePort; hc != 0 {
		fmt.Fprintf(b, "  health check node port: %d, TCP, served by berth (accepted in filter %s)\n", hc, ipvs.ChainNodePorts)
	}
}
