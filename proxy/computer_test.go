package proxy

import (
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// FuzzComputer: through any sequence of service, slice and node changes, a
// Computer returns what Compute returns for the same snapshot, and the
// service ports it says changed are exactly those that did.
func FuzzComputer(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x03\x01\x02\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"))
	f.Add([]byte("service-with-many-bytes-to-chew-on-0123456789abcdefghijklmnopqrstuvwxyz"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{data: data}
		opts := r.options()
		services := map[types.NamespacedName]*v1.Service{}
		endpointSlices := map[types.NamespacedName]*discovery.EndpointSlice{}
		var n *v1.Node
		c := NewComputer(opts)
		var prev map[Family]*State
		for step := range 1 + r.n(8) {
			changed := map[types.NamespacedName]bool{}
			nodeChanged := step == 0
			for range r.n(4) + 1 {
				switch r.n(5) {
				case 0, 1:
					svc := r.service()
					name := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
					services[name] = svc
					changed[name] = true
				case 2:
					s := r.slice()
					name := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
					if old := endpointSlices[name]; old != nil {
						changed[types.NamespacedName{Namespace: old.Namespace, Name: old.Labels[discovery.LabelServiceName]}] = true
					}
					endpointSlices[name] = s
					changed[types.NamespacedName{Namespace: s.Namespace, Name: s.Labels[discovery.LabelServiceName]}] = true
				case 3:
					if len(services) > 0 {
						name := slices.SortedFunc(maps.Keys(services), compareNames)[r.n(len(services))]
						delete(services, name)
						changed[name] = true
					}
				default:
					if r.n(3) == 0 {
						n = node(thisNode, r.pick("z1", "z2", ""))
						nodeChanged = true
					}
				}
			}
			snap := NewSnapshot(slices.Collect(maps.Values(services)), slices.Collect(maps.Values(endpointSlices)), n)
			got, gotProblems, diff := c.Update(snap, changed, nodeChanged)
			want, wantProblems := Compute(snap, opts)
			if d := cmp.Diff(want, got, cmpOpts...); d != "" {
				t.Fatalf("step %d: Computer and Compute differ (-Compute +Computer):\n%s", step, d)
			}
			if d := cmp.Diff(wantProblems, gotProblems, cmpOpts...); d != "" {
				t.Fatalf("step %d: problems differ (-Compute +Computer):\n%s", step, d)
			}
			for _, f := range opts.Families {
				if prev == nil {
					if diff[f] != nil {
						t.Fatalf("step %d: the first Update says %v changed, want nil (everything)", step, diff[f])
					}
					continue
				}
				if d := cmp.Diff(changedServices(prev[f], got[f]), diff[f], cmpOpts...); d != "" {
					t.Fatalf("step %d: IPv%d changed ports (-want +got):\n%s", step, f, d)
				}
			}
			prev = got
		}
	})
}

func compareNames(a, b types.NamespacedName) int {
	if a.Namespace != b.Namespace {
		if a.Namespace < b.Namespace {
			return -1
		}
		return 1
	}
	switch {
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}

func TestComputerOneServiceChanged(t *testing.T) {
	opts := Options{NodeName: thisNode, NodeIPs: addrs("192.168.0.1"), Families: []Family{IPv4}}
	snap := benchSnapshot(50)
	c := NewComputer(opts)
	if _, _, diff := c.Update(snap, nil, true); diff[IPv4] != nil {
		t.Fatalf("first Update: diff %v, want nil", diff[IPv4])
	}
	// svc-00007 loses an endpoint: only its port changed.
	name := types.NamespacedName{Namespace: "ns", Name: "svc-00007"}
	eps := *snap.Endpoints[name]
	key := EndpointPortKey{Family: IPv4, Name: "http", Protocol: TCP}
	eps.Ports = []PortEndpoints{{Key: key, Endpoints: eps.Endpoints(key)[1:]}}
	next := &Snapshot{Services: snap.Services, Endpoints: maps.Clone(snap.Endpoints), Node: snap.Node}
	next.Endpoints[name] = &eps
	states, _, diff := c.Update(next, map[types.NamespacedName]bool{name: true}, false)
	want := map[string]bool{spn("svc-00007", "http", TCP).Key(): true}
	if d := cmp.Diff(want, diff[IPv4]); d != "" {
		t.Errorf("changed ports (-want +got):\n%s", d)
	}
	full, _ := Compute(next, opts)
	if d := cmp.Diff(full, states, cmpOpts...); d != "" {
		t.Errorf("(-Compute +Computer):\n%s", d)
	}
}
