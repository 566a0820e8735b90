package proxy

import (
	"cmp"
	"net/netip"
	"slices"
)

// Conntrack removes connection-tracking entries that would keep UDP flows
// on a path that no longer exists: UDP has no connection to close, so
// without this a client keeps talking to a dead endpoint (or to nothing)
// for as long as it keeps sending. netrules implements it.
type Conntrack interface {
	// ClearUDPForServiceIP removes the UDP entries whose original
	// destination is ip.
	ClearUDPForServiceIP(ip netip.Addr) error
	// ClearUDPForEndpoint removes the UDP entries from svcIP:port that were
	// NATed to endpointIP.
	ClearUDPForEndpoint(svcIP netip.Addr, port uint16, endpointIP netip.Addr) error
}

// staleUDP is the conntrack cleanup a change of State calls for.
type staleUDP struct {
	// serviceIPs appeared with endpoints (entries created while they had
	// none, or no rules, must go) or disappeared.
	serviceIPs []netip.Addr
	// endpoints went away from a UDP service port.
	endpoints []staleEndpoint
}

// staleEndpoint is one endpoint that left one service address.
type staleEndpoint struct {
	serviceIP  netip.Addr
	port       uint16
	endpointIP netip.Addr
}

// vip is a UDP service address.
type vip struct {
	ip   netip.Addr
	port uint16
}

// udpVIPs maps each UDP service address of st to whether it has endpoints.
func udpVIPs(st *State) map[vip]bool {
	out := map[vip]bool{}
	if st == nil {
		return out
	}
	for i := range st.Services {
		sp := &st.Services[i]
		if sp.Protocol != UDP {
			continue
		}
		for _, ip := range sp.ClusterIPs {
			out[vip{ip, sp.Port}] = len(sp.ClusterEndpoints) > 0
		}
		for _, ip := range append(slices.Clone(sp.ExternalIPs), sp.LoadBalancerIPs...) {
			out[vip{ip, sp.Port}] = len(sp.ExternalEndpoints) > 0
		}
	}
	return out
}

// findStaleUDP compares the State before and after a successful sync, as
// kube-proxy does: a UDP service address that gained its first endpoint or
// went away is cleared as a whole; an endpoint no longer used by a UDP
// service port is cleared for each address of the port.
func findStaleUDP(prev, next *State) staleUDP {
	var out staleUDP
	before, after := udpVIPs(prev), udpVIPs(next)
	whole := map[netip.Addr]bool{}
	for v, has := range after {
		if had, ok := before[v]; has && (!ok || !had) {
			whole[v.ip] = true
		}
	}
	for v := range before {
		if _, ok := after[v]; !ok {
			whole[v.ip] = true
		}
	}
	for ip := range whole {
		out.serviceIPs = append(out.serviceIPs, ip)
	}
	slices.SortFunc(out.serviceIPs, netip.Addr.Compare)
	if prev == nil {
		return out
	}
	nextPorts := map[string]*ServicePort{}
	if next != nil {
		for i := range next.Services {
			nextPorts[next.Services[i].Name.Key()] = &next.Services[i]
		}
	}
	for i := range prev.Services {
		sp := &prev.Services[i]
		if sp.Protocol != UDP {
			continue
		}
		kept := map[netip.AddrPort]bool{}
		if np := nextPorts[sp.Name.Key()]; np != nil {
			for _, e := range append(slices.Clone(np.ClusterEndpoints), np.ExternalEndpoints...) {
				kept[netip.AddrPortFrom(e.IP, e.Port)] = true
			}
		}
		addrs := append(append(slices.Clone(sp.ClusterIPs), sp.ExternalIPs...), sp.LoadBalancerIPs...)
		for _, e := range append(slices.Clone(sp.ClusterEndpoints), sp.ExternalEndpoints...) {
			if kept[netip.AddrPortFrom(e.IP, e.Port)] {
				continue
			}
			for _, ip := range addrs {
				if !whole[ip] {
					out.endpoints = append(out.endpoints, staleEndpoint{serviceIP: ip, port: sp.Port, endpointIP: e.IP})
				}
			}
		}
	}
	slices.SortFunc(out.endpoints, func(a, b staleEndpoint) int {
		return cmp.Or(a.serviceIP.Compare(b.serviceIP), cmp.Compare(a.port, b.port), a.endpointIP.Compare(b.endpointIP))
	})
	out.endpoints = slices.Compact(out.endpoints)
	return out
}
