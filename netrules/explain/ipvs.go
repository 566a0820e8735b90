package explain

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/berthnode/berth/netrules/ipvs"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

// IPVSExplanation is what IPVS mode programmed for one service.
type IPVSExplanation struct {
	// Service is the service asked about: "namespace/name" or
	// "namespace/name:port".
	Service string
	// Ports are the service's ports that have rules, by name and protocol.
	Ports []IPVSPort
	// NodePortAddresses are the addresses node ports answer on.
	NodePortAddresses []netip.Addr
}

// IPVSPort is what IPVS mode does for one service port.
type IPVSPort struct {
	// Name is "namespace/name:port", as in the rules' comments.
	Name string
	// Protocol is the port's protocol.
	Protocol proxy.Protocol
	// Destinations are the port's addresses and ports with their virtual
	// services, in rule order.
	Destinations []VirtualDestination
	// ClusterMasquerade is which cluster-IP traffic is masqueraded.
	ClusterMasquerade IPVSMasquerade
	// ExternalLocal tells that externalTrafficPolicy is Local: clients
	// keep their address and only the node's own traffic is masqueraded.
	ExternalLocal bool
	// ExternalMasquerade tells that all external traffic is masqueraded
	// (externalTrafficPolicy Cluster).
	ExternalMasquerade bool
	// PodsToCluster are the pod CIDRs whose traffic may use the cluster
	// endpoints of an externalTrafficPolicy Local port without a local one.
	PodsToCluster []string
	// SourceRanges are the loadBalancerSourceRanges let through.
	SourceRanges []string
	// Firewall tells that load-balancer traffic from other sources is
	// dropped.
	Firewall bool
	// HealthCheckNodePort is the eTP Local health check's node port.
	HealthCheckNodePort uint16
	// Notes are what berth would not have programmed.
	Notes []string
}

// IPVSMasquerade is which traffic to a cluster IP is masqueraded.
type IPVSMasquerade struct {
	// All: every connection (masqueradeAll).
	All bool
	// Except are the sources left alone (the cluster CIDRs).
	Except []string
	// NodeOnly: only the node's own connections (no cluster CIDR known).
	NodeOnly bool
}

// VirtualDestination is one address and port of a service port.
type VirtualDestination struct {
	// Kind is what the address is.
	Kind ipvs.Kind
	// Addr is the virtual address (for a node port, one of the node-port
	// addresses).
	Addr netip.Addr
	// Port is the virtual port.
	Port uint16
	// Virtual is the kernel's virtual service; nil when it has none.
	Virtual *ipvs.Service
	// Destinations are its real servers, with weights and connections.
	Destinations []ipvs.Destination
	// Verdict is the REJECT or DROP of filter BERTH-IPVS-SERVICES for new
	// connections, "" when there is none.
	Verdict string
}

// ExplainIPVS tells, for people, what IPVS mode programmed for service
// ("namespace/name" or "namespace/name:port"): it reads the backend's
// iptables chains in save (iptables-save output of nat and filter, by
// table) for the service's addresses and policies, and h for their
// virtual services and destinations. It trusts no State. ErrNotProgrammed
// when no rule is for the service.
func ExplainIPVS(h ipvs.Handle, save map[xtables.Table][]byte, service string) (*IPVSExplanation, error) {
	_, onePort, err := parseService(service)
	if err != nil {
		return nil, err
	}
	x := &ipvsExplainer{service: service, onePort: onePort, rules: map[string][]savedRule{}, ports: map[portID]*IPVSPort{}}
	for t, st := range readSaved(save, ipvs.ChainPrefix) {
		for c := range st.chains {
			x.rules[string(t)+" "+c] = []savedRule{}
		}
		for c, rules := range st.rules {
			x.rules[string(t)+" "+c] = rules
		}
	}
	if _, ok := x.rules["nat "+ipvs.ChainServices]; !ok {
		return nil, fmt.Errorf("%w for %s: the nat table has no %s chain, so berth's IPVS proxy has not synced here",
			ErrNotProgrammed, service, ipvs.ChainServices)
	}
	x.readNAT()
	if len(x.ports) == 0 {
		return nil, fmt.Errorf("%w for %s: no rule of berth's IPVS chains is for it "+
			"(a service gets rules once it has a cluster IP; a headless one never does)", ErrNotProgrammed, service)
	}
	x.readFilter()
	if err := x.readIPVS(h); err != nil {
		return nil, err
	}
	e := &IPVSExplanation{Service: service, NodePortAddresses: x.nodeAddrs}
	for _, k := range sortedPorts(x.ports) {
		e.Ports = append(e.Ports, *x.ports[k])
	}
	return e, nil
}

// ipvsExplainer accumulates what the IPVS mode's rules say about a
// service; rules are keyed "table CHAIN".
type ipvsExplainer struct {
	service   string
	onePort   bool
	rules     map[string][]savedRule
	ports     map[portID]*IPVSPort
	nodeAddrs []netip.Addr
}

// owner returns the port name in a comment made of a name and a suffix,
// when it is the service's.
func (x *ipvsExplainer) owner(comment, suffix string) (string, bool) {
	name, ok := strings.CutSuffix(comment, suffix)
	if ok && (name == x.service || !x.onePort && strings.HasPrefix(name, x.service+":")) {
		return name, true
	}
	return "", false
}

func (x *ipvsExplainer) port(name, proto string) *IPVSPort {
	k := portID{name: name, proto: proxy.Protocol(strings.ToUpper(proto))}
	if x.ports[k] == nil {
		x.ports[k] = &IPVSPort{Name: name, Protocol: k.proto}
	}
	return x.ports[k]
}

// readNAT reads the destinations and masquerade of the service's ports
// from nat BERTH-IPVS-SERVICES and BERTH-IPVS-NODEPORTS.
func (x *ipvsExplainer) readNAT() {
	kinds := []struct {
		suffix string
		kind   ipvs.Kind
	}{{" cluster IP", ipvs.KindClusterIP}, {" external IP", ipvs.KindExternalIP}, {" loadbalancer IP", ipvs.KindLoadBalancerIP}}
	for _, r := range x.rules["nat "+ipvs.ChainServices] {
		if r.opts["-j"] == ipvs.ChainNodePorts {
			x.nodeAddrs = append(x.nodeAddrs, addr(r.opts["-d"]))
			continue
		}
		for _, k := range kinds {
			name, ok := x.owner(r.opts["--comment"], k.suffix)
			if !ok {
				continue
			}
			p := x.port(name, r.opts["-p"])
			if r.opts["-j"] == "ACCEPT" {
				p.Destinations = append(p.Destinations, VirtualDestination{Kind: k.kind, Addr: addr(r.opts["-d"]), Port: portOf(r.opts["--dport"])})
				continue
			}
			x.readMark(p, k.kind, r)
		}
	}
	for _, r := range x.rules["nat "+ipvs.ChainNodePorts] {
		if name, ok := x.owner(r.opts["--comment"], " node port"); ok {
			p := x.port(name, r.opts["-p"])
			x.readMark(p, ipvs.KindNodePort, r)
			for _, a := range x.nodeAddrs {
				p.Destinations = append(p.Destinations, VirtualDestination{Kind: ipvs.KindNodePort, Addr: a, Port: portOf(r.opts["--dport"])})
			}
		}
	}
}

// readMark reads one masquerade-mark rule of a port.
func (x *ipvsExplainer) readMark(p *IPVSPort, kind ipvs.Kind, r savedRule) {
	target := r.opts["-j"]
	switch {
	case kind != ipvs.KindClusterIP && target == ipvs.ChainMarkMasq && r.opts["--src-type"] == "LOCAL":
		p.ExternalLocal = true
	case kind != ipvs.KindClusterIP && target == ipvs.ChainMarkMasq:
		p.ExternalMasquerade = true
	case target == ipvs.ChainMarkMasq && r.has("!-s"):
		p.ClusterMasquerade.Except = appendNew(p.ClusterMasquerade.Except, r.opts["!-s"])
	case target == ipvs.ChainMarkMasq && r.has("-s"):
		p.ClusterMasquerade.NodeOnly = true
	case target == ipvs.ChainMarkMasq:
		p.ClusterMasquerade.All = true
	case target == ipvs.ChainMarkOffCluster:
		for _, o := range x.rules["nat "+ipvs.ChainMarkOffCluster] {
			if o.opts["-j"] == "RETURN" {
				p.ClusterMasquerade.Except = appendNew(p.ClusterMasquerade.Except, o.opts["-s"])
			}
		}
	default:
		p.note("rule not understood in nat %s: %s", ipvs.ChainServices, r.text)
	}
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func (p *IPVSPort) note(format string, args ...any) {
	if n := fmt.Sprintf(format, args...); !slices.Contains(p.Notes, n) {
		p.Notes = append(p.Notes, n)
	}
}

// readFilter reads the refusals, source ranges and health checks.
func (x *ipvsExplainer) readFilter() {
	for _, r := range x.rules["filter "+ipvs.ChainServices] {
		for _, suffix := range []string{" has no endpoints", " has no local endpoints", " pod and node traffic to external destinations"} {
			name, ok := x.owner(r.opts["--comment"], suffix)
			if !ok {
				continue
			}
			p := x.port(name, r.opts["-p"])
			if r.opts["-j"] == "RETURN" {
				if r.has("-s") {
					p.PodsToCluster = appendNew(p.PodsToCluster, r.opts["-s"])
				}
				continue
			}
			a, port := addr(r.opts["-d"]), portOf(r.opts["--dport"])
			for i := range p.Destinations {
				d := &p.Destinations[i]
				if d.Port == port && (d.Addr == a || !a.IsValid() && d.Kind == ipvs.KindNodePort) {
					d.Verdict = r.opts["-j"]
				}
			}
		}
	}
	for _, r := range x.rules["filter "+ipvs.ChainFirewall] {
		if name, ok := x.owner(r.opts["--comment"], " loadbalancer IP"); ok && r.opts["-j"] == "RETURN" {
			p := x.port(name, r.opts["-p"])
			src := r.opts["-s"]
			if src == r.opts["-d"] {
				src = "this node (from the load-balancer IP)"
			}
			p.SourceRanges = appendNew(p.SourceRanges, src)
		}
		if name, ok := x.owner(r.opts["--comment"], " traffic not in loadBalancerSourceRanges"); ok {
			x.port(name, r.opts["-p"]).Firewall = true
		}
	}
	for _, r := range x.rules["filter "+ipvs.ChainNodePorts] {
		name, ok := x.owner(r.opts["--comment"], " health check node port")
		for k, p := range x.ports {
			if ok && k.name == name {
				p.HealthCheckNodePort = portOf(r.opts["--dport"])
			}
		}
	}
}

// readIPVS finds each destination's virtual service and real servers.
func (x *ipvsExplainer) readIPVS(h ipvs.Handle) error {
	if h == nil {
		return nil
	}
	svcs, err := h.GetServices()
	if err != nil {
		return fmt.Errorf("reading the IPVS table: %w", err)
	}
	byKey := make(map[ipvs.ServiceKey]ipvs.Service, len(svcs))
	for _, s := range svcs {
		byKey[s.Key()] = s
	}
	for k, p := range x.ports {
		for i := range p.Destinations {
			d := &p.Destinations[i]
			s, ok := byKey[ipvs.ServiceKey{Addr: d.Addr, Port: d.Port, Protocol: k.proto}]
			if !ok {
				p.note("no IPVS virtual service for %s %s", k.proto, netip.AddrPortFrom(d.Addr, d.Port))
				continue
			}
			d.Virtual = &s
			if d.Destinations, err = h.GetDestinations(s); err != nil {
				return fmt.Errorf("reading the IPVS table: %w", err)
			}
			slices.SortFunc(d.Destinations, func(a, b ipvs.Destination) int { return a.AddrPort().Compare(b.AddrPort()) })
		}
	}
	return nil
}
