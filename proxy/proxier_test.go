package proxy

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	runtimemetrics "runtime/metrics"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func TestProxierSyncLoop(t *testing.T) {
	webSlice := slice("web", "web-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{sport("http", 8080)}, sep("10.0.0.1", "node-b", ready))
	h := newHarness(t, service("web", "10.96.0.10"), webSlice, node(thisNode, ""))
	if err := h.proxier.Ready(); !errors.Is(err, ErrNotSynced) {
		t.Errorf("Ready before the first sync: %v, want ErrNotSynced", err)
	}

	calls, st := h.waitCalls(1, 0)
	if diff := cmp.Diff([]backendCall{{changed: nil}}, calls, cmp.AllowUnexported(backendCall{})); diff != "" {
		t.Fatalf("first sync must be full (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]ServicePort{tcp80("web", "10.96.0.10", ep("10.0.0.1", 8080, false))}, st.Services, cmpOpts...); diff != "" {
		t.Fatalf("first state (-want +got):\n%s", diff)
	}
	h.waitFor("ready", 0, func() bool { return h.proxier.Ready() == nil })

	// An endpoint change syncs only that service, after the min interval.
	s := webSlice.DeepCopy()
	s.ResourceVersion = "2"
	s.Endpoints = append(s.Endpoints, sep("10.0.0.2", thisNode, ready))
	h.updateSlice(s)
	calls, st = h.waitCalls(2, time.Second)
	if diff := cmp.Diff(backendCall{changed: []string{"ns/web:http/TCP"}}, calls[1], cmp.AllowUnexported(backendCall{})); diff != "" {
		t.Fatalf("partial sync (-want +got):\n%s", diff)
	}
	if got := len(st.Services[0].ClusterEndpoints); got != 2 {
		t.Fatalf("endpoints after update: %d, want 2", got)
	}

	// A failed sync is retried (after the sync period) as a full one.
	h.backend.setFail(errors.New("restore failed"))
	h.create(service("dns", "10.96.0.53", withPorts(port("dns", v1.ProtocolUDP, 53, 0))))
	calls, _ = h.waitCalls(3, time.Second)
	if diff := cmp.Diff(backendCall{changed: []string{"ns/dns:dns/UDP"}, err: true}, calls[2], cmp.AllowUnexported(backendCall{})); diff != "" {
		t.Fatalf("failing sync (-want +got):\n%s", diff)
	}
	h.backend.setFail(nil)
	calls, st = h.waitCalls(4, time.Hour)
	if diff := cmp.Diff(backendCall{changed: nil}, calls[3], cmp.AllowUnexported(backendCall{})); diff != "" {
		t.Fatalf("sync after a failure must be full (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ns/dns:dns/UDP", "ns/web:http/TCP"}, serviceKeys(st)); diff != "" {
		t.Fatalf("services (-want +got):\n%s", diff)
	}
	if err := h.proxier.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}

func TestProxierPeriodicFullSync(t *testing.T) {
	h := newHarness(t, service("web", "10.96.0.10"))
	h.waitCalls(1, 0)
	// Nothing changes: the loop still runs a full sync every sync period.
	calls, _ := h.waitCalls(2, testSyncPeriod)
	if calls[1].changed != nil {
		t.Fatalf("periodic sync is partial: %v", calls[1].changed)
	}
}

// TestProxierPeriodicSyncIsPartial checks that the syncs every sync period
// are partial until FullSyncPeriod has passed: on a large node a full sync
// outlasts the sync period, and a full sync every period would make every
// endpoint change wait for one.
func TestProxierPeriodicSyncIsPartial(t *testing.T) {
	h := newHarnessWithPeriod(t, 30*time.Second, service("web", "10.96.0.10"))
	h.waitCalls(1, 0)
	// Longer than the sync period after the first, full, sync, a change
	// is still synced partially.
	h.clock.Step(45 * time.Second)
	h.create(service("api", "10.96.0.11"))
	calls, _ := h.waitCalls(2, time.Second)
	if calls[1].changed == nil {
		t.Fatal("a sync 45s after a full one (sync period 30s) is full, want partial")
	}
}

func TestProxierEventsOncePerProblem(t *testing.T) {
	bad := service("bad", "10.96.0.20", withPorts(port("p", v1.ProtocolTCP, 0, 0)))
	h := newHarness(t, bad, service("web", "10.96.0.10"))
	h.waitCalls(1, 0)
	// A change elsewhere syncs again; the problem is still there but was
	// already reported.
	h.create(service("other", "10.96.0.11"))
	h.waitCalls(2, time.Second)
	close(h.recorder.Events)
	var events []string
	for e := range h.recorder.Events {
		events = append(events, e)
	}
	want := []string{`Warning InvalidPort port "p": port 0 out of range`}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
}

func TestProxierConntrackAndHealthChecks(t *testing.T) {
	dns := service("dns", "10.96.0.53", withPorts(port("dns", v1.ProtocolUDP, 53, 0)))
	dnsSlice := slice("dns", "dns-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{sportProto("dns", v1.ProtocolUDP, 5353)},
		sep("10.0.0.1", "node-b", ready), sep("10.0.0.2", "node-b", ready))
	lb := service("lb", "10.96.0.80", withType(v1.ServiceTypeLoadBalancer), withPorts(port("http", v1.ProtocolTCP, 80, 30080)),
		withExternalLocal(32000), withLB("203.0.113.1"))
	lbSlice := slice("lb", "lb-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{sport("http", 8080)},
		sep("10.0.0.5", thisNode, ready), sep("10.0.0.6", thisNode, terminating), sep("10.0.0.7", "node-b", ready))
	h := newHarness(t, dns, dnsSlice, lb, lbSlice)
	h.waitCalls(1, 0)
	h.waitFor("conntrack of the new UDP service", 0, func() bool { return len(h.conntrack.get()) == 1 })
	if diff := cmp.Diff([]string{"ip 10.96.0.53"}, h.conntrack.get()); diff != "" {
		t.Fatalf("conntrack after the first sync (-want +got):\n%s", diff)
	}
	ports, counts := h.health.get()
	lbName := types.NamespacedName{Namespace: "ns", Name: "lb"}
	if diff := cmp.Diff([]any{map[types.NamespacedName]uint16{lbName: 32000}, map[types.NamespacedName]int{lbName: 1}}, []any{ports, counts}); diff != "" {
		t.Fatalf("health checks (-want +got):\n%s", diff)
	}

	// An endpoint leaves the UDP service: its flows are cleared.
	s := dnsSlice.DeepCopy()
	s.ResourceVersion = "2"
	s.Endpoints = s.Endpoints[:1]
	h.updateSlice(s)
	h.waitCalls(2, time.Second)
	h.waitFor("conntrack of the removed endpoint", 0, func() bool { return len(h.conntrack.get()) == 2 })
	if diff := cmp.Diff([]string{"ip 10.96.0.53", "endpoint 10.96.0.53:53 -> 10.0.0.2"}, h.conntrack.get()); diff != "" {
		t.Fatalf("conntrack (-want +got):\n%s", diff)
	}
}

func TestProxierHealthAndMetrics(t *testing.T) {
	h := newHarness(t, service("web", "10.96.0.10"), node(thisNode, ""))
	h.waitCalls(1, 0)
	h.waitFor("ready", 0, func() bool { return h.proxier.Ready() == nil })
	if !h.proxier.NodeEligible() {
		t.Error("NodeEligible false for a plain node")
	}
	families, err := h.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"kubeproxy_sync_proxy_rules_iptables_total":              10,
		"kubeproxy_sync_proxy_rules_last_timestamp_seconds":      100000,
		"kubeproxy_sync_proxy_rules_duration_seconds_count":      1,
		"kubeproxy_sync_full_proxy_rules_duration_seconds_count": 1,
		"berth_proxy_sync_bytes_count":                           1,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}

	// A backend that keeps failing makes the proxy unhealthy after twice
	// the sync period.
	h.backend.setFail(errors.New("broken"))
	h.create(service("other", "10.96.0.11"))
	h.waitCalls(2, time.Second)
	if err := h.proxier.Healthy(); err != nil {
		t.Fatalf("Healthy right after a failure: %v", err)
	}
	h.waitFor("unhealthy", time.Hour, func() bool { return errors.Is(h.proxier.Healthy(), ErrStale) })
}

func TestNodeEligible(t *testing.T) {
	tests := []struct {
		name string
		node *v1.Node
		want bool
	}{
		{name: "no node", want: false},
		{name: "plain", node: node(thisNode, ""), want: true},
		{name: "deleting", node: func() *v1.Node {
			n := node(thisNode, "")
			n.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
			return n
		}(), want: false},
		{name: "autoscaler taint", node: func() *v1.Node {
			n := node(thisNode, "")
			n.Spec.Taints = []v1.Taint{{Key: "ToBeDeletedByClusterAutoscaler", Effect: v1.TaintEffectNoSchedule}}
			return n
		}(), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Proxier{tracker: newChangeTracker(thisNode, func() {})}
			if tt.node != nil {
				p.tracker.setNode(nil, tt.node)
			}
			if got := p.NodeEligible(); got != tt.want {
				t.Fatalf("NodeEligible = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewProxierValidates(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	ok := func() Config {
		return Config{NodeName: thisNode, Informers: factory, Backends: map[Family]Backend{IPv4: &fakeBackend{}}}
	}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr bool
	}{
		{name: "ok", mod: func(*Config) {}},
		{name: "no node name", mod: func(c *Config) { c.NodeName = "" }, wantErr: true},
		{name: "no informers", mod: func(c *Config) { c.Informers = nil }, wantErr: true},
		{name: "no backend", mod: func(c *Config) { c.Backends = nil }, wantErr: true},
		{name: "family without backend", mod: func(c *Config) { c.Options.Families = []Family{IPv4, IPv6} }, wantErr: true},
		{name: "node names differ", mod: func(c *Config) { c.Options.NodeName = "other" }, wantErr: true},
		{name: "min above sync period", mod: func(c *Config) { c.MinSyncPeriod, c.SyncPeriod = time.Minute, time.Second }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok()
			tt.mod(&cfg)
			if _, err := NewProxier(cfg); (err != nil) != tt.wantErr {
				t.Fatalf("NewProxier: %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

// gcPercent reads the GOGC without setting it.
func gcPercent() int {
	s := []runtimemetrics.Sample{{Name: "/gc/gogc:percent"}}
	runtimemetrics.Read(s)
	return int(s[0].Value.Uint64())
}

// TestProxierTightensGCForBigStates: from the first sync of tightState
// services on, the GOGC is bigStateGCPercent, and it is back to what it was when a
// service goes.
func TestProxierTightensGCForBigStates(t *testing.T) {
	usual := debug.SetGCPercent(77)
	defer debug.SetGCPercent(usual)
	var objects []runtime.Object
	for i := range tightState {
		name := fmt.Sprintf("svc-%04d", i)
		objects = append(objects, service(name, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)),
			slice(name, name+"-x", discovery.AddressTypeIPv4, []discovery.EndpointPort{sport("http", 8080)}, sep("10.244.1.1", thisNode, ready)))
	}
	h := newHarness(t, objects...)
	h.waitCalls(1, time.Second)
	if got := gcPercent(); got != bigStateGCPercent {
		t.Errorf("GOGC after the first sync of %d services = %d, want %d", tightState, got, bigStateGCPercent)
	}
	if err := h.client.CoreV1().Services("ns").Delete(context.Background(), "svc-0007", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitCalls(2, time.Second)
	h.waitFor("the GOGC back at 77 with one service less", time.Second, func() bool { return gcPercent() == 77 })
	h.backend.mu.Lock()
	gogc := slices.Clone(h.backend.gogc)
	h.backend.mu.Unlock()
	if want := []int{bigStateGCPercent, 77}; !slices.Equal(gogc[:2], want) {
		t.Errorf("GOGC during the syncs = %v, want %v", gogc[:2], want)
	}
}
