package proxy

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Labels that make berth (as kube-proxy) leave a service alone.
const (
	// LabelServiceProxyName marks a service as handled by another proxy:
	// kube-proxy without a name of its own ignores it, whatever its value.
	LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"
	// LabelHeadless marks a headless service (set by the EndpointSlice
	// controller on its slices).
	LabelHeadless = "service.kubernetes.io/headless"
)

// Options are the node's facts and the cluster settings Compute needs.
type Options struct {
	// NodeName is this node's name: endpoints whose nodeName equals it are
	// local.
	NodeName string
	// NodeIPs are the node's primary addresses (at most one per family).
	NodeIPs []netip.Addr
	// Families are the IP families this node programs; Compute returns one
	// State per family.
	Families []Family
	// ClusterCIDRs are the pod CIDRs of the cluster (kube-proxy's
	// clusterCIDR) for detect-local; empty: none.
	ClusterCIDRs []netip.Prefix
	// MasqueradeAll masquerades all traffic to cluster IPs.
	MasqueradeAll bool
	// NodePortAddresses restrict the addresses node ports answer on
	// (kube-proxy's nodePortAddresses CIDRs); empty: all.
	NodePortAddresses []netip.Prefix
	// NodePortPrimary is the "primary" keyword of nodePortAddresses: the
	// NodeIPs are added to NodePortAddresses.
	NodePortPrimary bool
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if len(o.Families) == 0 {
		errs = append(errs, errors.New("no IP family to program"))
	}
	seen := map[Family]bool{}
	for _, f := range o.Families {
		if f != IPv4 && f != IPv6 {
			errs = append(errs, fmt.Errorf("unknown IP family %d", f))
		}
		if seen[f] {
			errs = append(errs, fmt.Errorf("IP family %d listed twice", f))
		}
		seen[f] = true
	}
	for _, ip := range o.NodeIPs {
		if !ip.IsValid() {
			errs = append(errs, errors.New("invalid node IP"))
		}
	}
	for _, p := range append(slices.Clone(o.ClusterCIDRs), o.NodePortAddresses...) {
		if !p.IsValid() {
			errs = append(errs, errors.New("invalid CIDR"))
		}
	}
	return errors.Join(errs...)
}

// Compute turns a snapshot into the desired State of each family in
// opts.Families, making every Kubernetes decision kube-proxy makes. It is
// pure and never panics: bad input is skipped and returned as Problems,
// without affecting other services.
func Compute(snap *Snapshot, opts Options) (map[Family]*State, []Problem) {
	if snap == nil {
		snap = &Snapshot{}
	}
	return newComputation(snap, opts).run()
}

// newComputation returns a computation with empty States.
func newComputation(snap *Snapshot, opts Options) *computation {
	c := &computation{
		snap:     snap,
		opts:     opts,
		families: sortedFamilies(opts.Families),
		states:   map[Family]*State{},
		claimed:  map[frontend]types.NamespacedName{},
	}
	if snap.Node != nil {
		c.zone = snap.Node.Labels[v1.LabelTopologyZone]
	}
	for _, f := range c.families {
		c.states[f] = newState(f, opts)
	}
	return c
}

// run adds every service of the snapshot.
func (c *computation) run() (map[Family]*State, []Problem) {
	for _, svc := range orderedServices(c.snap.Services) {
		c.addService(svc)
	}
	for _, st := range c.states {
		slices.SortFunc(st.Services, func(a, b ServicePort) int {
			return cmp.Compare(a.Name.Key(), b.Name.Key())
		})
	}
	return c.states, sortProblems(c.problems)
}

// computation holds one Compute's work.
type computation struct {
	snap     *Snapshot
	opts     Options
	families []Family
	zone     string
	states   map[Family]*State
	// claimed records which service owns each frontend, so that a
	// conflicting later service is skipped instead of corrupting the
	// first one's rules.
	claimed  map[frontend]types.NamespacedName
	problems []Problem
	// results, when not nil, receives what each service came to, for a
	// Computer; current is the service being added.
	results map[types.NamespacedName]*serviceResult
	current *serviceResult
}

// serviceResult is what Compute made of one service, kept by a Computer.
type serviceResult struct {
	// ports are the service's ports of each family (IPv4 first).
	ports [2][]ServicePort
	// problems are the service's Problems.
	problems []Problem
	// wants are the distinct frontends its ports want, claimed or not.
	wants []frontend
	// lost tells that one of its ports lost a frontend (to another
	// service, or to another port of its own).
	lost bool
}

// familyIndex is the index of f in serviceResult.ports.
func familyIndex(f Family) int {
	if f == IPv6 {
		return 1
	}
	return 0
}

// frontend is one address, port and protocol traffic arrives on; a node
// port has no address.
type frontend struct {
	ip       netip.Addr
	port     uint16
	nodePort bool
	protocol Protocol
}

func sortedFamilies(in []Family) []Family {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// newState returns an empty State of family f with opts' globals.
func newState(f Family, opts Options) *State {
	st := &State{Family: f, MasqueradeAll: opts.MasqueradeAll, Services: []ServicePort{}}
	for _, p := range opts.ClusterCIDRs {
		if p.IsValid() && Of(p.Addr()) == f {
			st.ClusterCIDRs = append(st.ClusterCIDRs, p.Masked())
		}
	}
	for _, ip := range opts.NodeIPs {
		if ip.IsValid() && Of(ip) == f {
			st.NodeIPs = append(st.NodeIPs, ip.Unmap())
		}
	}
	st.NodePortAddresses = nodePortAddresses(f, opts)
	return st
}

// nodePortAddresses resolves nodePortAddresses for family f. Empty means
// every address, as does a CIDR of length zero, or a list without an entry
// of the family (as in kube-proxy).
func nodePortAddresses(f Family, opts Options) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range opts.NodePortAddresses {
		if !p.IsValid() || Of(p.Addr()) != f {
			continue
		}
		if p.Bits() == 0 {
			return nil
		}
		out = append(out, p.Masked())
	}
	if opts.NodePortPrimary {
		for _, ip := range opts.NodeIPs {
			if ip.IsValid() && Of(ip) == f {
				ip = ip.Unmap()
				out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
	}
	slices.SortFunc(out, comparePrefixes)
	return slices.Compact(out)
}

func comparePrefixes(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// orderedServices sorts services oldest first (then by name): on a
// conflict the service that was there first keeps its rules.
func orderedServices(m map[types.NamespacedName]*v1.Service) []*v1.Service {
	out := make([]*v1.Service, 0, len(m))
	for _, svc := range m {
		if svc != nil {
			out = append(out, svc)
		}
	}
	slices.SortFunc(out, func(a, b *v1.Service) int {
		return cmp.Or(
			a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
			cmp.Compare(a.Namespace, b.Namespace),
			cmp.Compare(a.Name, b.Name),
		)
	})
	return out
}

// ignored tells whether the service gets no rules at all, as in
// kube-proxy: headless, ExternalName, or labelled for another proxy.
func ignored(svc *v1.Service) bool {
	if _, ok := svc.Labels[LabelServiceProxyName]; ok {
		return true
	}
	if _, ok := svc.Labels[LabelHeadless]; ok {
		return true
	}
	if svc.Spec.Type == v1.ServiceTypeExternalName {
		return true
	}
	return svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == v1.ClusterIPNone
}

// addService adds the rules of one service to every family's State.
func (c *computation) addService(svc *v1.Service) {
	if ignored(svc) {
		return
	}
	res := &serviceResult{}
	c.current = res
	defer func() {
		c.current = nil
		c.problems = append(c.problems, res.problems...)
		if c.results != nil {
			c.results[types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}] = res
		}
	}()
	info, problems := parseService(svc, c.families)
	res.problems = append(res.problems, problems...)
	if info == nil {
		return
	}
	eps := c.snap.Endpoints[info.name]
	if eps != nil {
		res.problems = append(res.problems, eps.Problems...)
	} else {
		eps = &ServiceEndpoints{}
	}
	ports, problems := validPorts(info.name, svc.Spec.Ports)
	res.problems = append(res.problems, problems...)
	for _, f := range c.families {
		clusterIP, ok := info.clusterIPs[f]
		if !ok {
			continue
		}
		for _, p := range ports {
			sp := c.servicePort(info, p, f, clusterIP, eps)
			if c.claim(&sp) {
				c.states[f].Services = append(c.states[f].Services, sp)
				res.ports[familyIndex(f)] = append(res.ports[familyIndex(f)], sp)
			}
		}
	}
}

// validPorts returns the ports of a service that berth can program, and a
// Problem for each other one.
func validPorts(name types.NamespacedName, ports []v1.ServicePort) ([]v1.ServicePort, []Problem) {
	var out []v1.ServicePort
	var problems []Problem
	type numKey struct {
		port     int32
		protocol v1.Protocol
	}
	names := map[ServicePortName]bool{}
	numbers := map[numKey]bool{}
	for _, p := range ports {
		bad := func(reason, format string, args ...any) {
			problems = append(problems, Problem{Service: name, Reason: reason,
				Message: fmt.Sprintf("port %q: ", p.Name) + fmt.Sprintf(format, args...)})
		}
		spn := ServicePortName{Namespace: name.Namespace, Name: name.Name, Port: p.Name, Protocol: Protocol(p.Protocol)}
		switch {
		case !knownProtocol(p.Protocol):
			bad(ReasonUnsupportedProtocol, "protocol %q is not TCP, UDP or SCTP", p.Protocol)
		case p.Port < 1 || p.Port > 65535:
			bad(ReasonInvalidPort, "port %d out of range", p.Port)
		case p.NodePort < 0 || p.NodePort > 65535:
			bad(ReasonInvalidPort, "node port %d out of range", p.NodePort)
		case names[spn]:
			bad(ReasonDuplicatePort, "name and protocol %s used twice", p.Protocol)
		case numbers[numKey{p.Port, p.Protocol}]:
			bad(ReasonDuplicatePort, "port %d/%s used twice", p.Port, p.Protocol)
		default:
			names[spn] = true
			numbers[numKey{p.Port, p.Protocol}] = true
			out = append(out, p)
		}
	}
	return out, problems
}

func knownProtocol(p v1.Protocol) bool {
	return p == v1.ProtocolTCP || p == v1.ProtocolUDP || p == v1.ProtocolSCTP
}

// servicePort builds the rules of one port of a service in family f.
func (c *computation) servicePort(info *serviceInfo, p v1.ServicePort, f Family, clusterIP netip.Addr, eps *ServiceEndpoints) ServicePort {
	proto := Protocol(p.Protocol)
	sp := ServicePort{
		Name:            ServicePortName{Namespace: info.name.Namespace, Name: info.name.Name, Port: p.Name, Protocol: proto},
		Protocol:        proto,
		ClusterIPs:      []netip.Addr{clusterIP},
		Port:            uint16(p.Port),
		NodePort:        uint16(p.NodePort),
		ExternalIPs:     slices.Clone(info.externalIPs[f]),
		LoadBalancerIPs: slices.Clone(info.lbIPs[f]),
		SourceRanges:    slices.Clone(info.sourceRanges[f]),
		AffinityTimeout: info.affinity,
	}
	// An address that is both external and load-balancer IP gets one set
	// of rules (an IPVS backend could not add it twice).
	sp.ExternalIPs = slices.DeleteFunc(sp.ExternalIPs, func(ip netip.Addr) bool { return ip == clusterIP })
	sp.LoadBalancerIPs = slices.DeleteFunc(sp.LoadBalancerIPs, func(ip netip.Addr) bool {
		return ip == clusterIP || slices.Contains(sp.ExternalIPs, ip)
	})
	if len(sp.LoadBalancerIPs) == 0 {
		sp.SourceRanges = nil
	}
	external := sp.HasExternal()
	sp.ExternalLocal = info.externalLocal && external
	if sp.ExternalLocal {
		sp.HealthCheckNodePort = info.healthCheckNodePort
	}
	all := eps.Endpoints(EndpointPortKey{Family: f, Name: p.Name, Protocol: proto})
	sel := selectEndpoints(all, policy{internalLocal: info.internalLocal, externalLocal: sp.ExternalLocal, external: external}, c.opts.NodeName, c.zone)
	sp.ClusterEndpoints, sp.ExternalEndpoints = sel.cluster, sel.external
	return sp
}

// claim records the frontends of sp for its service; it reports a Problem
// and returns false when another service (or port) has one of them.
func (c *computation) claim(sp *ServicePort) bool {
	owner := types.NamespacedName{Namespace: sp.Name.Namespace, Name: sp.Name.Name}
	var fes []frontend
	for _, ips := range [][]netip.Addr{sp.ClusterIPs, sp.ExternalIPs, sp.LoadBalancerIPs} {
		for _, ip := range ips {
			fes = append(fes, frontend{ip: ip, port: sp.Port, protocol: sp.Protocol})
		}
	}
	if sp.NodePort != 0 {
		// Node ports are per family too: the same port in both families
		// belongs to one service.
		fes = append(fes, frontend{ip: familyZero(sp.ClusterIPs[0]), port: sp.NodePort, nodePort: true, protocol: sp.Protocol})
	}
	res := c.current
	for _, fe := range fes {
		if !slices.Contains(res.wants, fe) {
			res.wants = append(res.wants, fe)
		}
	}
	for _, fe := range fes {
		if other, ok := c.claimed[fe]; ok {
			what := netip.AddrPortFrom(fe.ip, fe.port).String()
			if fe.nodePort {
				what = fmt.Sprintf("node port %d", fe.port)
			}
			res.problems = append(res.problems, Problem{Service: owner, Reason: ReasonPortConflict,
				Message: fmt.Sprintf("port %q: %s/%s is already used by service %s", sp.Name.Port, what, sp.Protocol, other)})
			res.lost = true
			return false
		}
	}
	for _, fe := range fes {
		c.claimed[fe] = owner
	}
	return true
}

// familyZero returns the unspecified address of ip's family.
func familyZero(ip netip.Addr) netip.Addr {
	if Of(ip) == IPv4 {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}
