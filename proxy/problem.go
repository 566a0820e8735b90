package proxy

import (
	"cmp"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/types"
)

// Problem is bad input that Compute skipped: a service (or one of its
// ports, or some of its endpoints) berth could not program. Every other
// service is unaffected. The proxier reports each as an Event on the
// Service.
type Problem struct {
	// Service is the service the input belongs to.
	Service types.NamespacedName
	// Reason is a short CamelCase cause, one of the Reason constants; it
	// becomes the Event's reason.
	Reason string
	// Message says what was skipped and why, naming the offending value.
	Message string
}

// String renders the problem for logs.
func (p Problem) String() string {
	return fmt.Sprintf("%s: %s: %s", p.Service, p.Reason, p.Message)
}

// The reasons of Problems.
const (
	// ReasonInvalidIP: a cluster, external or load-balancer IP or a source
	// range does not parse.
	ReasonInvalidIP = "InvalidIP"
	// ReasonInvalidPort: a port, node port or health-check node port is
	// out of range.
	ReasonInvalidPort = "InvalidPort"
	// ReasonDuplicatePort: two ports of a service share a name, or a port
	// number and protocol.
	ReasonDuplicatePort = "DuplicatePort"
	// ReasonUnsupportedProtocol: a port's protocol is not TCP, UDP or SCTP.
	ReasonUnsupportedProtocol = "UnsupportedProtocol"
	// ReasonUnsupportedFamily: the service has no cluster IP of a family
	// this node programs.
	ReasonUnsupportedFamily = "UnsupportedIPFamily"
	// ReasonInvalidSessionAffinity: an unknown affinity or a timeout out of
	// range.
	ReasonInvalidSessionAffinity = "InvalidSessionAffinity"
	// ReasonPortConflict: an address, port and protocol (or a node port)
	// another service already uses.
	ReasonPortConflict = "PortConflict"
	// ReasonInvalidEndpoint: an EndpointSlice address or port berth
	// cannot use.
	ReasonInvalidEndpoint = "InvalidEndpoint"
)

// sortProblems sorts and deduplicates problems (the same input found bad in
// two families is one problem).
func sortProblems(ps []Problem) []Problem {
	slices.SortFunc(ps, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.Service.Namespace, b.Service.Namespace),
			cmp.Compare(a.Service.Name, b.Service.Name),
			cmp.Compare(a.Reason, b.Reason),
			cmp.Compare(a.Message, b.Message),
		)
	})
	return slices.Compact(ps)
}
