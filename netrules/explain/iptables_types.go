package explain

import (
	"net/netip"
	"time"

	"github.com/berthnode/berth/proxy"
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
