package proxy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

func TestChangeTracker(t *testing.T) {
	web := types.NamespacedName{Namespace: "ns", Name: "web"}
	trigger := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	withTrigger := func(s *discovery.EndpointSlice, at time.Time) *discovery.EndpointSlice {
		s = s.DeepCopy()
		s.Annotations = map[string]string{v1.EndpointsLastChangeTriggerTime: at.Format(time.RFC3339Nano)}
		return s
	}
	bumped := func(s *v1.Service) *v1.Service { s = s.DeepCopy(); s.ResourceVersion = "2"; return s }
	svc := service("web", "10.96.0.10")
	s1 := slice("web", "web-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{sport("http", 8080)}, sep("10.0.0.1", "n", ready))
	s2 := slice("web", "web-2", discovery.AddressTypeIPv4, []discovery.EndpointPort{sport("http", 8080)}, sep("10.0.0.2", "n", ready))

	type step struct {
		name string
		do   func(tr *changeTracker)
		// wantPokes is the number of onChange calls so far.
		wantPokes   int
		wantChanges changeSet
		// wantEndpoints are the IPs of the web service's endpoints.
		wantEndpoints []string
	}
	tests := []struct {
		name  string
		steps []step
	}{{
		name: "service and slices, merged per service, trigger time kept",
		steps: []step{
			{name: "add service", do: func(tr *changeTracker) { tr.setService(nil, svc) },
				wantPokes: 1, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{web: {}}}},
			{name: "two slices, later trigger second", do: func(tr *changeTracker) {
				tr.setSlice(nil, withTrigger(s1, trigger))
				tr.setSlice(nil, withTrigger(s2, trigger.Add(time.Second)))
			}, wantPokes: 3, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{web: trigger}},
				wantEndpoints: []string{"10.0.0.1", "10.0.0.2"}},
			{name: "delete a slice (tombstone)", do: func(tr *changeTracker) {
				handlerFor(tr.setSlice).OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/web-1", Obj: s1})
			}, wantPokes: 4, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{web: {}}},
				wantEndpoints: []string{"10.0.0.2"}},
		},
	}, {
		name: "resyncs and foreign objects are not changes",
		steps: []step{
			{name: "add", do: func(tr *changeTracker) { tr.setService(nil, svc) },
				wantPokes: 1, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{web: {}}}},
			{name: "resync", do: func(tr *changeTracker) { tr.setService(svc, svc) },
				wantPokes: 1, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{}}},
			{name: "update", do: func(tr *changeTracker) { tr.setService(svc, bumped(svc)) },
				wantPokes: 2, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{web: {}}}},
			{name: "slice without service label", do: func(tr *changeTracker) {
				s := s1.DeepCopy()
				s.Labels = nil
				tr.setSlice(nil, s)
			}, wantPokes: 2, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{}}},
			{name: "other node", do: func(tr *changeTracker) { tr.setNode(nil, node("node-b", "z")) },
				wantPokes: 2, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{}}},
		},
	}, {
		name: "only a zone change of this node is a change",
		steps: []step{
			{name: "node appears without zone", do: func(tr *changeTracker) { tr.setNode(nil, node(thisNode, "")) },
				wantPokes: 0, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{}}},
			{name: "zone set", do: func(tr *changeTracker) { tr.setNode(node(thisNode, ""), node(thisNode, "z1")) },
				wantPokes: 1, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{}, Node: true}},
			{name: "status update", do: func(tr *changeTracker) { tr.setNode(node(thisNode, "z1"), node(thisNode, "z1")) },
				wantPokes: 1, wantChanges: changeSet{Services: map[types.NamespacedName]time.Time{}}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pokes := 0
			tr := newChangeTracker(thisNode, func() { pokes++ })
			for _, s := range tt.steps {
				s.do(tr)
				snap, changes := tr.snapshot()
				var gotEPs []string
				if eps := snap.Endpoints[web]; eps != nil {
					for _, e := range eps.Endpoints(EndpointPortKey{Family: IPv4, Name: "http", Protocol: TCP}) {
						gotEPs = append(gotEPs, e.IP.String())
					}
				}
				got := []any{pokes, changes, gotEPs}
				want := []any{s.wantPokes, s.wantChanges, s.wantEndpoints}
				if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
					t.Fatalf("%s: [pokes, changes, endpoints] (-want +got):\n%s", s.name, diff)
				}
			}
		})
	}
}
