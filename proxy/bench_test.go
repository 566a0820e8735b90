package proxy

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// benchSnapshot is n services of one TCP port with 5 ready endpoints each,
// half of them on this node; the first 2,768 are NodePort services.
func benchSnapshot(n int) *Snapshot {
	snap := &Snapshot{
		Services:  make(map[types.NamespacedName]*v1.Service, n),
		Endpoints: make(map[types.NamespacedName]*ServiceEndpoints, n),
		Node:      node(thisNode, ""),
	}
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		svc := service(name, fmt.Sprintf("10.96.%d.%d", i/250, i%250))
		if i < 2768 {
			svc.Spec.Type = v1.ServiceTypeNodePort
			svc.Spec.Ports[0].NodePort = int32(30000 + i)
		}
		var eps []discovery.Endpoint
		for j := range 5 {
			nodeName := "node-b"
			if j%2 == 0 {
				nodeName = thisNode
			}
			eps = append(eps, sep(fmt.Sprintf("10.244.%d.%d", j, i%250), nodeName, "ready"))
		}
		key := types.NamespacedName{Namespace: "ns", Name: name}
		snap.Services[key] = svc
		snap.Endpoints[key] = MergeSlices(key, []*discovery.EndpointSlice{
			slice(name, name+"-a", discovery.AddressTypeIPv4, []discovery.EndpointPort{sport("http", 8080)}, eps...)})
	}
	return snap
}

// BenchmarkCompute computes n services from scratch, diffs two States, and
// updates a Computer after one service lost an endpoint.
func BenchmarkCompute(b *testing.B) {
	opts := Options{NodeName: thisNode, NodeIPs: addrs("192.168.0.1"), Families: []Family{IPv4}}
	for _, n := range []int{1000, 10000} {
		snap := benchSnapshot(n)
		b.Run(fmt.Sprintf("services=%d/compute", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Compute(snap, opts)
			}
		})
		a, _ := Compute(snap, opts)
		c, _ := Compute(snap, opts)
		b.Run(fmt.Sprintf("services=%d/diff", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				changedServices(a[IPv4], c[IPv4])
			}
		})
		b.Run(fmt.Sprintf("services=%d/computer-flip", n), func(b *testing.B) {
			comp := NewComputer(opts)
			comp.Update(snap, nil, true)
			name := types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("svc-%05d", n/2)}
			whole := snap.Endpoints[name]
			key := EndpointPortKey{Family: IPv4, Name: "http", Protocol: TCP}
			fewer := &ServiceEndpoints{Ports: []PortEndpoints{{Key: key, Endpoints: whole.Endpoints(key)[1:]}}}
			changed := map[types.NamespacedName]bool{name: true}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				snap.Endpoints[name] = whole
				if i%2 == 0 {
					snap.Endpoints[name] = fewer
				}
				if _, _, diff := comp.Update(snap, changed, false); len(diff[IPv4]) != 1 {
					b.Fatalf("changed %v, want one port", diff[IPv4])
				}
			}
			snap.Endpoints[name] = whole
		})
	}
}
