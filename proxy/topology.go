package proxy

import "slices"

// policy is what endpoint selection needs to know of a service port.
type policy struct {
	// internalLocal is internalTrafficPolicy: Local.
	internalLocal bool
	// externalLocal is externalTrafficPolicy: Local (on a port that takes
	// external traffic).
	externalLocal bool
	// external tells whether the port takes external traffic at all.
	external bool
}

// usesCluster tells whether any traffic goes to cluster-wide endpoints:
// internal traffic under the Cluster policy, and external traffic under
// Cluster (or under Local, for traffic from the node itself).
func (p policy) usesCluster() bool { return !p.internalLocal || p.external }

// usesLocal tells whether any traffic goes to node-local endpoints only.
func (p policy) usesLocal() bool { return p.internalLocal || p.externalLocal }

// selection is the result of endpoint selection for one service port.
type selection struct {
	// cluster serves traffic to cluster IPs; external serves node ports,
	// external and load-balancer IPs (nil when the port takes none).
	cluster, external []Endpoint
}

// Topology modes chosen from the endpoints' hints, as kube-proxy names
// them.
const (
	topologyNone     = ""
	topologySameZone = "PreferSameZone"
	topologySameNode = "PreferSameNode"
)

// selectEndpoints picks the endpoints of a service port, as kube-proxy's
// CategorizeEndpoints: ready endpoints (narrowed by topology hints when
// every ready endpoint has one and one is for this node or zone), falling
// back to serving and terminating ones when none is ready; the local set
// likewise among the endpoints on this node. eps is sorted by IP and port,
// which is the round-robin order the result keeps.
func selectEndpoints(eps []SliceEndpoint, p policy, nodeName, zone string) selection {
	local := func(e SliceEndpoint) bool { return nodeName != "" && e.NodeName == nodeName }
	var clusterEPs, localEPs []Endpoint
	if p.usesCluster() {
		mode := topologyMode(eps, nodeName, zone)
		clusterEPs = pick(eps, nodeName, func(e SliceEndpoint) bool { return e.Ready && inTopology(e, mode, nodeName, zone) })
		if len(clusterEPs) == 0 {
			clusterEPs = pick(eps, nodeName, func(e SliceEndpoint) bool { return e.Serving && e.Terminating })
		}
	}
	if p.usesLocal() {
		localEPs = pick(eps, nodeName, func(e SliceEndpoint) bool { return local(e) && e.Ready })
		if len(localEPs) == 0 {
			localEPs = pick(eps, nodeName, func(e SliceEndpoint) bool { return local(e) && e.Serving && e.Terminating })
		}
	}
	var sel selection
	sel.cluster = clusterEPs
	if p.internalLocal {
		sel.cluster = localEPs
	}
	if p.external {
		sel.external = clusterEPs
		if p.externalLocal {
			sel.external = localEPs
		}
	}
	return sel
}

// pick returns the endpoints keep accepts, in order.
func pick(eps []SliceEndpoint, nodeName string, keep func(SliceEndpoint) bool) []Endpoint {
	var out []Endpoint
	for _, e := range eps {
		if keep(e) {
			out = append(out, Endpoint{
				IP:          e.IP,
				Port:        e.Port,
				Local:       nodeName != "" && e.NodeName == nodeName,
				Ready:       e.Ready,
				Serving:     e.Serving,
				Terminating: e.Terminating,
			})
		}
	}
	return out
}

// topologyMode decides whether hints narrow the cluster endpoints: only if
// every ready endpoint carries a hint of the kind, and at least one hint
// names this node (or its zone). Node hints win over zone hints.
func topologyMode(eps []SliceEndpoint, nodeName, zone string) string {
	ready := false
	allNode, forNode := true, false
	allZone, forZone := true, false
	for _, e := range eps {
		if !e.Ready {
			continue
		}
		ready = true
		if len(e.NodeHints) == 0 {
			allNode = false
		} else if slices.Contains(e.NodeHints, nodeName) {
			forNode = true
		}
		if len(e.ZoneHints) == 0 {
			allZone = false
		} else if slices.Contains(e.ZoneHints, zone) {
			forZone = true
		}
	}
	switch {
	case !ready:
		return topologyNone
	case allNode && forNode && nodeName != "":
		return topologySameNode
	case allZone && forZone && zone != "":
		return topologySameZone
	}
	return topologyNone
}

func inTopology(e SliceEndpoint, mode, nodeName, zone string) bool {
	switch mode {
	case topologySameNode:
		return slices.Contains(e.NodeHints, nodeName)
	case topologySameZone:
		return slices.Contains(e.ZoneHints, zone)
	}
	return true
}
