package proxy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// TestMergeSlices merges slices of two families and two ports: each port's
// endpoints are found by key, the keys are sorted, a terminating duplicate
// loses to a live one whatever the order of the slices, and a port without
// a number is a Problem.
func TestMergeSlices(t *testing.T) {
	name := types.NamespacedName{Namespace: "ns", Name: "web"}
	httpKey := EndpointPortKey{Family: IPv4, Name: "http", Protocol: TCP}
	dnsKey := EndpointPortKey{Family: IPv4, Name: "dns", Protocol: UDP}
	v6Key := EndpointPortKey{Family: IPv6, Name: "http", Protocol: TCP}
	ports := []discovery.EndpointPort{sport("http", 8080), sportProto("dns", v1.ProtocolUDP, 53)}
	in := []*discovery.EndpointSlice{
		slice("web", "web-b", discovery.AddressTypeIPv4, ports, sep("10.0.0.2", thisNode, ready), sep("10.0.0.1", thisNode, terminating)),
		slice("web", "web-a", discovery.AddressTypeIPv4, ports, sep("10.0.0.1", "node-b", ready)),
		slice("web", "web-6", discovery.AddressTypeIPv6, []discovery.EndpointPort{sport("http", 8080), {Name: ptr.To("nonumber")}}, sep("fd00::1", thisNode, ready)),
	}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}} {
		var list []*discovery.EndpointSlice
		for _, i := range order {
			list = append(list, in[i])
		}
		got := MergeSlices(name, list)
		var keys []EndpointPortKey
		for _, p := range got.Ports {
			keys = append(keys, p.Key)
		}
		if diff := cmp.Diff([]EndpointPortKey{dnsKey, httpKey, v6Key}, keys); diff != "" {
			t.Errorf("order %v: keys (-want +got):\n%s", order, diff)
		}
		var http []string
		for _, e := range got.Endpoints(httpKey) {
			http = append(http, e.IP.String()+" "+e.NodeName)
		}
		if diff := cmp.Diff([]string{"10.0.0.1 node-b", "10.0.0.2 " + thisNode}, http); diff != "" {
			t.Errorf("order %v: http endpoints (-want +got):\n%s", order, diff)
		}
		if n := len(got.Endpoints(dnsKey)); n != 2 {
			t.Errorf("order %v: %d dns endpoints, want 2", order, n)
		}
		if eps := got.Endpoints(EndpointPortKey{Family: IPv4, Name: "http", Protocol: UDP}); eps != nil {
			t.Errorf("order %v: endpoints of a port no slice has: %v", order, eps)
		}
		if len(got.Problems) != 1 || got.Problems[0].Reason != ReasonInvalidEndpoint {
			t.Errorf("order %v: problems %+v, want one for the port without a number", order, got.Problems)
		}
	}
}
