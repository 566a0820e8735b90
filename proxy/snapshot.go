package proxy

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Snapshot is what the informers had seen at one instant, the input of
// Compute. It is immutable: the maps are copies and the objects in them are
// shared with the informer caches, which nobody may modify.
type Snapshot struct {
	// Services are every Service, by name.
	Services map[types.NamespacedName]*v1.Service
	// Endpoints are the endpoints of each service, merged across the
	// service's EndpointSlices (absent: the service has none).
	Endpoints map[types.NamespacedName]*ServiceEndpoints
	// Node is this node's Node object (nil until the informer saw it).
	Node *v1.Node
}

// EndpointPortKey identifies the endpoints of one service port in one IP
// family. EndpointSlice ports carry the resolved target port number and are
// matched to service ports by name and protocol (as kube-proxy does), so
// named target ports resolve per endpoint.
type EndpointPortKey struct {
	// Family is the family of the slice the endpoints came from.
	Family Family
	// Name is the service port's name ("" for a lone unnamed port).
	Name string
	// Protocol is the port's protocol.
	Protocol Protocol
}

// SliceEndpoint is one endpoint of a service port as its EndpointSlice says.
type SliceEndpoint struct {
	// IP and Port are where traffic goes.
	IP   netip.Addr
	Port uint16
	// NodeName is the node the endpoint runs on ("" when unknown).
	NodeName string
	// Ready, Serving and Terminating are the slice's conditions, defaulted
	// as the API says (ready and serving when unset).
	Ready, Serving, Terminating bool
	// ZoneHints and NodeHints are the topology hints (sorted; nil: none).
	ZoneHints, NodeHints []string
}

// ServiceEndpoints are a service's endpoints merged across its slices.
type ServiceEndpoints struct {
	// Ports are the endpoints of each service port (per family), sorted by
	// key: a slice, not a map, since most services have one or two (at
	// 10,000 services a map each would be 5 MB more).
	Ports []PortEndpoints
	// Problems are what merging had to skip (bad addresses, bad ports).
	Problems []Problem
}

// PortEndpoints are the endpoints of one service port in one family.
type PortEndpoints struct {
	Key EndpointPortKey
	// Endpoints are sorted by IP then port and unique by IP and port.
	Endpoints []SliceEndpoint
}

// Endpoints returns the endpoints of the service port key (nil: none).
func (e *ServiceEndpoints) Endpoints(key EndpointPortKey) []SliceEndpoint {
	for i := range e.Ports {
		if e.Ports[i].Key == key {
			return e.Ports[i].Endpoints
		}
	}
	return nil
}

// compareKeys orders EndpointPortKeys.
func compareKeys(a, b EndpointPortKey) int {
	return cmp.Or(cmp.Compare(a.Family, b.Family), strings.Compare(a.Name, b.Name), strings.Compare(string(a.Protocol), string(b.Protocol)))
}

// MergeSlices merges the EndpointSlices of one service. Slices of the FQDN
// address type, ports without a number, and addresses that are not of the
// slice's type are skipped (the last two with a Problem). When two slices
// name the same address and port, a non-terminating endpoint wins, as in
// kube-proxy. endpointSlices may be in any order; the result does not depend on it.
func MergeSlices(service types.NamespacedName, endpointSlices []*discovery.EndpointSlice) *ServiceEndpoints {
	out := &ServiceEndpoints{}
	merged := map[EndpointPortKey]map[netip.AddrPort]SliceEndpoint{}
	for _, slice := range sortedSlices(endpointSlices) {
		family, ok := sliceFamily(slice.AddressType)
		if !ok {
			continue // FQDN slices are not for proxies.
		}
		for _, port := range slice.Ports {
			key, num, problem := slicePort(service, slice, family, port)
			if problem != nil {
				out.Problems = append(out.Problems, *problem)
				continue
			}
			if merged[key] == nil {
				merged[key] = map[netip.AddrPort]SliceEndpoint{}
			}
			out.Problems = append(out.Problems, addSliceEndpoints(merged[key], service, slice, family, num)...)
		}
	}
	out.Ports = make([]PortEndpoints, 0, len(merged))
	for key, set := range merged {
		eps := make([]SliceEndpoint, 0, len(set))
		for _, ep := range set {
			eps = append(eps, ep)
		}
		slices.SortFunc(eps, compareSliceEndpoints)
		out.Ports = append(out.Ports, PortEndpoints{Key: key, Endpoints: eps})
	}
	slices.SortFunc(out.Ports, func(a, b PortEndpoints) int { return compareKeys(a.Key, b.Key) })
	return out
}

// sortedSlices orders slices by name so that merging is deterministic.
func sortedSlices(in []*discovery.EndpointSlice) []*discovery.EndpointSlice {
	out := make([]*discovery.EndpointSlice, 0, len(in))
	for _, s := range in {
		if s != nil {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *discovery.EndpointSlice) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

func sliceFamily(t discovery.AddressType) (Family, bool) {
	switch t {
	case discovery.AddressTypeIPv4:
		return IPv4, true
	case discovery.AddressTypeIPv6:
		return IPv6, true
	}
	return 0, false
}

// slicePort validates one port of a slice.
func slicePort(service types.NamespacedName, slice *discovery.EndpointSlice, family Family, port discovery.EndpointPort) (EndpointPortKey, uint16, *Problem) {
	key := EndpointPortKey{Family: family, Protocol: TCP}
	if port.Name != nil {
		key.Name = *port.Name
	}
	if port.Protocol != nil {
		key.Protocol = Protocol(*port.Protocol)
	}
	if port.Port == nil || *port.Port < 1 || *port.Port > 65535 {
		num := "none"
		if port.Port != nil {
			num = fmt.Sprint(*port.Port)
		}
		return key, 0, &Problem{Service: service, Reason: ReasonInvalidEndpoint,
			Message: fmt.Sprintf("EndpointSlice %s port %q has invalid number %s", slice.Name, key.Name, num)}
	}
	return key, uint16(*port.Port), nil
}

// addSliceEndpoints adds a slice's endpoints for one port to set.
func addSliceEndpoints(set map[netip.AddrPort]SliceEndpoint, service types.NamespacedName, slice *discovery.EndpointSlice, family Family, port uint16) []Problem {
	var problems []Problem
	for _, ep := range slice.Endpoints {
		if len(ep.Addresses) == 0 {
			continue
		}
		// Only the first address is used, as in kube-proxy: the others
		// are, by the API's definition, the same endpoint.
		ip, err := netip.ParseAddr(ep.Addresses[0])
		if err != nil || ip.Zone() != "" || Of(ip) != family {
			problems = append(problems, Problem{Service: service, Reason: ReasonInvalidEndpoint,
				Message: fmt.Sprintf("EndpointSlice %s of type %s has invalid address %q", slice.Name, slice.AddressType, ep.Addresses[0])})
			continue
		}
		ip = ip.Unmap()
		se := SliceEndpoint{
			IP:          ip,
			Port:        port,
			Ready:       ep.Conditions.Ready == nil || *ep.Conditions.Ready,
			Serving:     ep.Conditions.Serving == nil || *ep.Conditions.Serving,
			Terminating: ep.Conditions.Terminating != nil && *ep.Conditions.Terminating,
		}
		if ep.NodeName != nil {
			se.NodeName = *ep.NodeName
		}
		if ep.Hints != nil {
			for _, z := range ep.Hints.ForZones {
				se.ZoneHints = append(se.ZoneHints, z.Name)
			}
			for _, n := range ep.Hints.ForNodes {
				se.NodeHints = append(se.NodeHints, n.Name)
			}
			slices.Sort(se.ZoneHints)
			slices.Sort(se.NodeHints)
		}
		key := netip.AddrPortFrom(ip, port)
		if old, ok := set[key]; ok && !old.Terminating && se.Terminating {
			continue
		}
		set[key] = se
	}
	return problems
}

func compareSliceEndpoints(a, b SliceEndpoint) int {
	if c := a.IP.Compare(b.IP); c != 0 {
		return c
	}
	return int(a.Port) - int(b.Port)
}

// NewSnapshot builds a Snapshot from API objects, merging each service's
// slices (found by their kubernetes.io/service-name label) with
// MergeSlices. It is what the change tracker maintains incrementally, for
// tests and tools that start from objects.
func NewSnapshot(services []*v1.Service, endpointSlices []*discovery.EndpointSlice, node *v1.Node) *Snapshot {
	snap := &Snapshot{
		Services:  map[types.NamespacedName]*v1.Service{},
		Endpoints: map[types.NamespacedName]*ServiceEndpoints{},
		Node:      node,
	}
	for _, svc := range services {
		if svc != nil {
			snap.Services[types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}] = svc
		}
	}
	byService := map[types.NamespacedName][]*discovery.EndpointSlice{}
	for _, s := range endpointSlices {
		if s == nil || s.Labels[discovery.LabelServiceName] == "" {
			continue
		}
		key := types.NamespacedName{Namespace: s.Namespace, Name: s.Labels[discovery.LabelServiceName]}
		byService[key] = append(byService[key], s)
	}
	for key, list := range byService {
		snap.Endpoints[key] = MergeSlices(key, list)
	}
	return snap
}
