package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/berthnode/berth/proxy"
)

// ErrInvalidState is returned for a State that Compute never produces: an
// unknown family or protocol, a port 0, a service port listed twice.
var ErrInvalidState = errors.New("invalid proxy state")

// Kind is what a virtual service stands for.
type Kind string

// The kinds of virtual service.
const (
	KindClusterIP      Kind = "cluster IP"
	KindExternalIP     Kind = "external IP"
	KindLoadBalancerIP Kind = "load-balancer IP"
	KindNodePort       Kind = "node port"
)

// VirtualServer is one virtual service a State asks for and its
// destinations.
type VirtualServer struct {
	// Service is the virtual service as berth programs it.
	Service Service
	// Kind is what the virtual service stands for.
	Kind Kind
	// Owner is the Name.Key() of the service port it belongs to.
	Owner string
	// Destinations are the endpoints, in the State's order.
	Destinations []Destination
}

// Bound tells whether the virtual address goes on the dummy interface:
// every kind but node ports, whose addresses are the node's.
func (v *VirtualServer) Bound() bool { return v.Kind != KindNodePort }

// PlanOptions are the inputs of Plan that are not in the State.
type PlanOptions struct {
	// Scheduler is the scheduler of every virtual service.
	Scheduler string
	// NodePortAddrs are the addresses node ports answer on (see
	// NodePortAddresses).
	NodePortAddrs []netip.Addr
}

// Plan returns the virtual services state asks for, in the order of its
// service ports (cluster IPs, external IPs, load-balancer IPs, then node
// ports on each address). A virtual service two service ports both ask for
// (two services with the same external IP and port) goes to the first, by
// Name.Key(); the notes say which were left out. Plan is pure.
func Plan(state *proxy.State, opts PlanOptions) ([]VirtualServer, []string, error) {
	if state == nil || (state.Family != proxy.IPv4 && state.Family != proxy.IPv6) {
		return nil, nil, fmt.Errorf("%w: no state or unknown family", ErrInvalidState)
	}
	var out []VirtualServer
	var notes []string
	owner := map[ServiceKey]string{}
	for i := range state.Services {
		sp := &state.Services[i]
		key := sp.Name.Key()
		if i > 0 && state.Services[i-1].Name.Key() == key {
			return nil, nil, fmt.Errorf("%w: service port %s is listed twice", ErrInvalidState, key)
		}
		vss, err := planService(sp, state.Family, opts)
		if err != nil {
			return nil, nil, err
		}
		for _, vs := range vss {
			k := vs.Service.Key()
			if prev, taken := owner[k]; taken {
				notes = append(notes, fmt.Sprintf("%s of %s is already %s's", k, key, prev))
				continue
			}
			owner[k] = key
			out = append(out, vs)
		}
	}
	return out, notes, nil
}

// planService returns the virtual services of one service port, without
// duplicates.
func planService(sp *proxy.ServicePort, f proxy.Family, opts PlanOptions) ([]VirtualServer, error) {
	key := sp.Name.Key()
	if protocolNumber(sp.Protocol) == 0 {
		return nil, fmt.Errorf("%w: service port %s has unknown protocol %q", ErrInvalidState, key, sp.Protocol)
	}
	cluster, err := destinations(key, sp.ClusterEndpoints, f)
	if err != nil {
		return nil, err
	}
	external, err := destinations(key, sp.ExternalEndpoints, f)
	if err != nil {
		return nil, err
	}
	if sp.ExternalLocal && len(external) == 0 {
		// No local endpoint: the node and its pods still reach the
		// cluster endpoints (the State's contract); the filter rules drop
		// everyone else's traffic before IPVS sees it.
		external = cluster
	}
	var out []VirtualServer
	seen := map[ServiceKey]bool{}
	add := func(kind Kind, addrs []netip.Addr, port uint16, dests []Destination) error {
		for _, a := range addrs {
			a, ok := inFamily(a, f)
			if !ok {
				continue
			}
			if port == 0 {
				return fmt.Errorf("%w: service port %s has port 0", ErrInvalidState, key)
			}
			vs := VirtualServer{Service: newService(a, port, sp, opts.Scheduler), Kind: kind, Owner: key, Destinations: dests}
			if k := vs.Service.Key(); !seen[k] {
				seen[k] = true
				out = append(out, vs)
			}
		}
		return nil
	}
	for _, step := range []struct {
		kind  Kind
		addrs []netip.Addr
		port  uint16
		dests []Destination
	}{
		{KindClusterIP, sp.ClusterIPs, sp.Port, cluster},
		{KindExternalIP, sp.ExternalIPs, sp.Port, external},
		{KindLoadBalancerIP, sp.LoadBalancerIPs, sp.Port, external},
	} {
		if err := add(step.kind, step.addrs, step.port, step.dests); err != nil {
			return nil, err
		}
	}
	if sp.NodePort != 0 {
		if err := add(KindNodePort, opts.NodePortAddrs, sp.NodePort, external); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// newService is the virtual service for one address and port of sp.
func newService(a netip.Addr, port uint16, sp *proxy.ServicePort, scheduler string) Service {
	s := Service{Addr: a, Port: port, Protocol: sp.Protocol, Scheduler: scheduler, Netmask: 0xffffffff}
	if a.Is6() {
		s.Netmask = 128
	}
	if sp.AffinityTimeout > 0 {
		// ClientIP affinity is IPVS persistence: a client returns to its
		// destination for Timeout seconds after its last connection ended.
		// Whole seconds, rounded up so that a sub-second timeout is not
		// "no timeout".
		s.Flags = FlagPersistent
		s.Timeout = uint32((sp.AffinityTimeout + time.Second - 1) / time.Second)
	}
	return s
}

// destinations turns endpoints of the family into masquerade destinations
// of weight 1, without duplicates. A terminating endpoint listed next to
// endpoints that are not gets weight 0: it keeps its connections but takes
// no new ones. (Compute lists terminating endpoints only when none is ready,
// and those keep weight 1: they are all there is.)
func destinations(key string, eps []proxy.Endpoint, f proxy.Family) ([]Destination, error) {
	allTerminating := true
	for _, ep := range eps {
		allTerminating = allTerminating && ep.Terminating
	}
	out := make([]Destination, 0, len(eps))
	seen := make(map[netip.AddrPort]bool, len(eps))
	for _, ep := range eps {
		if ep.Port == 0 {
			return nil, fmt.Errorf("%w: service port %s has endpoint %s with port 0", ErrInvalidState, key, ep.IP)
		}
		a, ok := inFamily(ep.IP, f)
		if !ok || seen[netip.AddrPortFrom(a, ep.Port)] {
			continue
		}
		seen[netip.AddrPortFrom(a, ep.Port)] = true
		w := 1
		if ep.Terminating && !allTerminating {
			w = 0
		}
		out = append(out, Destination{Addr: a, Port: ep.Port, Weight: w, ConnectionFlags: ForwardMasquerade})
	}
	return out, nil
}

// inFamily returns a in its canonical form for the family, and whether it
// belongs to it.
func inFamily(a netip.Addr, f proxy.Family) (netip.Addr, bool) {
	if !a.IsValid() || proxy.Of(a) != f {
		return netip.Addr{}, false
	}
	if f == proxy.IPv4 {
		return a.Unmap(), true
	}
	return a.WithZone(""), true
}

// NodePortAddresses returns the addresses node ports answer on, sorted: the
// node's local addresses of the family (those of every interface but
// loopback ones and the dummy interface, IPv6 link-local ones left out) and
// State.NodeIPs; when State.NodePortAddresses holds prefixes of the family
// (none of them a zero prefix), only the addresses inside them. Loopback
// prefixes are ignored, as by the iptables backend: a node port on
// localhost would need route_localnet.
func NodePortAddresses(state *proxy.State, local []LocalAddr) []netip.Addr {
	f := state.Family
	var prefixes []netip.Prefix
	all := true
	for _, p := range state.NodePortAddresses {
		if !p.IsValid() || proxy.Of(p.Addr()) != f || p.Addr().Is4In6() {
			continue
		}
		if p.Bits() == 0 {
			all, prefixes = true, nil
			break
		}
		all = false
		if !p.Masked().Addr().IsLoopback() {
			prefixes = append(prefixes, p.Masked())
		}
	}
	set := map[netip.Addr]bool{}
	consider := func(a netip.Addr) {
		a, ok := inFamily(a, f)
		if !ok || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() {
			return
		}
		if all || slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) }) {
			set[a] = true
		}
	}
	for _, la := range local {
		if !la.Loopback && la.Link != DummyInterface {
			consider(la.Addr)
		}
	}
	for _, a := range state.NodeIPs {
		consider(a)
	}
	out := make([]netip.Addr, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
