package proxy

import (
	"fmt"
	"net/netip"
	"time"
)

// Protocol is a transport protocol a service port uses.
type Protocol string

// The protocols Kubernetes services support.
const (
	TCP  Protocol = "TCP"
	UDP  Protocol = "UDP"
	SCTP Protocol = "SCTP"
)

// ServicePortName identifies one port of one service: the unit berth
// programs, as kube-proxy's ServicePortName.
type ServicePortName struct {
	// Namespace and Name are the Service's.
	Namespace, Name string
	// Port is the port's name within the Service ("" for a lone unnamed port).
	Port string
	// Protocol is the port's protocol.
	Protocol Protocol
}

// String renders the name as kube-proxy does: "ns/name:port" (the port
// part only when it has a name).
func (n ServicePortName) String() string {
	s := n.Namespace + "/" + n.Name
	if n.Port != "" {
		s += ":" + n.Port
	}
	return s
}

// Key is a stable, unique key of the port, also across protocols: the
// input backends hash into chain names.
func (n ServicePortName) Key() string {
	return fmt.Sprintf("%s/%s:%s/%s", n.Namespace, n.Name, n.Port, n.Protocol)
}

// Endpoint is one backend of a service port.
type Endpoint struct {
	// IP and Port are where traffic goes.
	IP   netip.Addr
	Port uint16
	// Local tells whether the endpoint runs on this node.
	Local bool
	// Ready, Serving and Terminating are the EndpointSlice conditions.
	Ready, Serving, Terminating bool
}

// String renders "ip:port".
func (e Endpoint) String() string { return netip.AddrPortFrom(e.IP, e.Port).String() }

// ServicePort is everything the kernel must do for one port of one service.
// Compute has already applied the service's policies: a backend programs
// what it is given and makes no Kubernetes decisions of its own.
type ServicePort struct {
	// Name identifies the port.
	Name ServicePortName
	// Protocol is the transport protocol.
	Protocol Protocol
	// ClusterIPs are the service's cluster IPs (one per family this node
	// programs); empty for a headless service (which gets no rules).
	ClusterIPs []netip.Addr
	// Port is the service port on the cluster IPs, external IPs and
	// load-balancer IPs.
	Port uint16
	// NodePort is the port on the node's addresses; 0 for none.
	NodePort uint16
	// ExternalIPs are spec.externalIPs of the family.
	ExternalIPs []netip.Addr
	// LoadBalancerIPs are the status.loadBalancer ingress IPs.
	LoadBalancerIPs []netip.Addr
	// SourceRanges restrict load-balancer traffic (empty: everyone).
	SourceRanges []netip.Prefix
	// AffinityTimeout is the ClientIP session-affinity timeout; 0 means no
	// affinity.
	AffinityTimeout time.Duration
	// ClusterEndpoints serve traffic to the cluster IPs, in round-robin
	// order (internalTrafficPolicy applied; only ready endpoints, or the
	// serving and terminating ones when none is ready). Empty: reject.
	ClusterEndpoints []Endpoint
	// ExternalEndpoints serve traffic to the node port, external IPs and
	// load-balancer IPs, in round-robin order (externalTrafficPolicy
	// applied). Empty: reject, or drop when ExternalLocal (as kube-proxy).
	ExternalEndpoints []Endpoint
	// ExternalLocal is externalTrafficPolicy: Local: external traffic keeps
	// its source address (no masquerade) and only reaches local endpoints,
	// except traffic that originates on this node (or its pods), which is
	// sent to ClusterEndpoints so that it is not dropped.
	ExternalLocal bool
	// HealthCheckNodePort is served by the proxy for ExternalLocal services
	// (0 for none): 200 when the node has local endpoints, 503 otherwise.
	HealthCheckNodePort uint16
}

// HasExternal tells whether the port takes external traffic at all.
func (s *ServicePort) HasExternal() bool {
	return s.NodePort != 0 || len(s.ExternalIPs) > 0 || len(s.LoadBalancerIPs) > 0
}

// State is what the kernel must do for every service port on this node:
// the output of Compute and the input of every backend.
type State struct {
	// Family is the IP family this state is for; backends program one
	// family per State.
	Family Family
	// Services are the ports to program, sorted by Name.Key().
	Services []ServicePort
	// ClusterCIDRs are the pod CIDRs of the cluster: traffic from outside
	// them to a cluster IP is masqueraded (detect-local). Empty: detect-local
	// is off and only MasqueradeAll masquerades cluster-IP traffic.
	ClusterCIDRs []netip.Prefix
	// MasqueradeAll masquerades all traffic to cluster IPs.
	MasqueradeAll bool
	// NodePortAddresses restrict the node addresses node ports answer on.
	// Empty: every local address of the node.
	NodePortAddresses []netip.Prefix
	// NodeIPs are the node's own addresses of the family.
	NodeIPs []netip.Addr
}

// Family is an IP family.
type Family int

// The IP families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Of returns the family of an address.
func Of(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}
