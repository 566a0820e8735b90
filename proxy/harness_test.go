package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/proxy/metrics"
)

// fakeBackend records every Sync and keeps the last State it was given.
type fakeBackend struct {
	mu    sync.Mutex
	calls []backendCall
	state *State
	// fail makes Syncs fail while set.
	fail error
	// refusePartial makes partial Syncs fail with ErrFullSyncRequired until
	// a full one succeeds, as a backend that cannot trust its memory of
	// the kernel.
	refusePartial bool
	// gogc is the GOGC during each Sync.
	gogc []int
}

type backendCall struct {
	// changed are the changed keys, sorted; nil for a full sync.
	changed []string
	err     bool
}

func (b *fakeBackend) Sync(_ context.Context, st *State, changed map[string]bool) (SyncResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	call := backendCall{err: b.fail != nil}
	if changed != nil {
		call.changed = []string{}
		for k := range changed {
			call.changed = append(call.changed, k)
		}
		slices.Sort(call.changed)
	}
	if changed != nil && b.refusePartial {
		call.err = true
		b.calls = append(b.calls, call)
		return SyncResult{}, fmt.Errorf("fake backend: %w", ErrFullSyncRequired)
	}
	b.calls = append(b.calls, call)
	b.gogc = append(b.gogc, gcPercent())
	if b.fail != nil {
		return SyncResult{}, b.fail
	}
	if changed == nil {
		b.refusePartial = false
	}
	b.state = st
	return SyncResult{Full: changed == nil, Rules: 10 * len(st.Services), Bytes: 100}, nil
}

func (b *fakeBackend) setFail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail = err
}

// setRefusePartial makes the backend refuse partial syncs until its next
// full one.
func (b *fakeBackend) setRefusePartial() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refusePartial = true
}

func (b *fakeBackend) snapshot() ([]backendCall, *State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls), b.state
}

// fakeConntrack records what it was asked to clear.
type fakeConntrack struct {
	mu      sync.Mutex
	cleared []string
}

func (c *fakeConntrack) ClearUDPForServiceIP(ip netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleared = append(c.cleared, "ip "+ip.String())
	return nil
}

func (c *fakeConntrack) ClearUDPForEndpoint(svcIP netip.Addr, port uint16, endpointIP netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleared = append(c.cleared, "endpoint "+netip.AddrPortFrom(svcIP, port).String()+" -> "+endpointIP.String())
	return nil
}

func (c *fakeConntrack) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.cleared)
}

// fakeServiceHealth keeps the last ports and counts.
type fakeServiceHealth struct {
	mu     sync.Mutex
	ports  map[types.NamespacedName]uint16
	counts map[types.NamespacedName]int
}

func (f *fakeServiceHealth) SyncServices(_ context.Context, ports map[types.NamespacedName]uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ports = ports
	return nil
}

func (f *fakeServiceHealth) SyncEndpoints(counts map[types.NamespacedName]int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts = counts
	return nil
}

func (f *fakeServiceHealth) get() (map[types.NamespacedName]uint16, map[types.NamespacedName]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ports, f.counts
}

// harness runs a Proxier over a fake clientset with a fake clock.
type harness struct {
	t         *testing.T
	client    *fake.Clientset
	clock     *testingclock.FakeClock
	backend   *fakeBackend
	conntrack *fakeConntrack
	health    *fakeServiceHealth
	recorder  *record.FakeRecorder
	metrics   *metrics.Metrics
	proxier   *Proxier
}

const testSyncPeriod = 24 * time.Hour

func newHarness(t *testing.T, objects ...runtime.Object) *harness {
	t.Helper()
	return newHarnessWithPeriod(t, testSyncPeriod, objects...)
}

// newHarnessWithPeriod is newHarness with the proxier's sync period given.
func newHarnessWithPeriod(t *testing.T, syncPeriod time.Duration, objects ...runtime.Object) *harness {
	t.Helper()
	h := &harness{
		t:         t,
		client:    fake.NewClientset(objects...),
		clock:     testingclock.NewFakeClock(time.Unix(100000, 0)),
		backend:   &fakeBackend{},
		conntrack: &fakeConntrack{},
		health:    &fakeServiceHealth{},
		recorder:  record.NewFakeRecorder(100),
		metrics:   metrics.New(),
	}
	p, err := NewProxier(Config{
		NodeName:      thisNode,
		Informers:     informers.NewSharedInformerFactory(h.client, 0),
		NodeInformers: NodeInformerFactory(h.client, thisNode),
		Backends:      map[Family]Backend{IPv4: h.backend},
		Recorder:      h.recorder,
		Conntrack:     h.conntrack,
		ServiceHealth: h.health,
		Metrics:       h.metrics,
		SyncPeriod:    syncPeriod,
		Clock:         h.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.proxier = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// waitFor polls cond, stepping the fake clock by step whenever the loop is
// asleep on it, until cond holds or 10 s of real time pass.
func (h *harness) waitFor(what string, step time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		if step > 0 && h.clock.HasWaiters() {
			h.clock.Step(step)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitCalls waits for the n-th backend call and returns all calls and the
// backend's state.
func (h *harness) waitCalls(n int, step time.Duration) ([]backendCall, *State) {
	h.t.Helper()
	h.waitFor("backend sync", step, func() bool { calls, _ := h.backend.snapshot(); return len(calls) >= n })
	return h.backend.snapshot()
}

func (h *harness) create(obj runtime.Object) {
	h.t.Helper()
	ctx := context.Background()
	var err error
	switch o := obj.(type) {
	case *v1.Service:
		_, err = h.client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *discovery.EndpointSlice:
		_, err = h.client.DiscoveryV1().EndpointSlices(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) updateSlice(s *discovery.EndpointSlice) {
	h.t.Helper()
	if _, err := h.client.DiscoveryV1().EndpointSlices(s.Namespace).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func serviceKeys(st *State) []string {
	var keys []string
	for _, sp := range st.Services {
		keys = append(keys, sp.Name.Key())
	}
	return keys
}
