package proxy

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"
)

// TestSyncFamilyDecidesFullSyncs: the proxier alone decides which syncs are
// full, and asks its backend accordingly: the first sync, one without a
// diff, the one after a failure, one FullSyncPeriod after the last full
// one, one with new node-wide settings, and one the backend refuses to do
// partially (it cannot trust its memory) are full; the others are partial,
// and a sync without changes does not reach the backend. The backends do
// as asked: this is where these situations are tested.
func TestSyncFamilyDecidesFullSyncs(t *testing.T) {
	web := tcp80("web", "10.96.0.10", ep("10.0.0.1", 8080, false))
	key := web.Name.Key()
	partial := func(err bool) backendCall { return backendCall{changed: []string{key}, err: err} }
	full := backendCall{changed: nil}
	steps := []struct {
		name string
		// prepare changes the state, the clock or the backend before the
		// sync.
		prepare func(st *State, clock *testingclock.FakeClock, b *fakeBackend)
		diff    map[string]bool
		want    []backendCall
		wantErr bool
	}{
		{name: "first sync, even with a diff", diff: map[string]bool{}, want: []backendCall{full}},
		{name: "a change", diff: map[string]bool{key: true}, want: []backendCall{partial(false)}},
		{name: "nothing changed", diff: map[string]bool{}},
		{name: "no diff", want: []backendCall{full}},
		{name: "node-wide settings changed", diff: map[string]bool{},
			prepare: func(st *State, _ *testingclock.FakeClock, _ *fakeBackend) { st.MasqueradeAll = true },
			want:    []backendCall{full}},
		{name: "a failed sync", diff: map[string]bool{key: true},
			prepare: func(_ *State, _ *testingclock.FakeClock, b *fakeBackend) { b.fail = errors.New("restore failed") },
			want:    []backendCall{partial(true)}, wantErr: true},
		{name: "after a failure", diff: map[string]bool{key: true},
			prepare: func(_ *State, _ *testingclock.FakeClock, b *fakeBackend) { b.fail = nil },
			want:    []backendCall{full}},
		{name: "within FullSyncPeriod of the last full sync", diff: map[string]bool{key: true},
			prepare: func(_ *State, c *testingclock.FakeClock, _ *fakeBackend) { c.Step(FullSyncPeriod - time.Second) },
			want:    []backendCall{partial(false)}},
		{name: "FullSyncPeriod after the last full sync", diff: map[string]bool{},
			prepare: func(_ *State, c *testingclock.FakeClock, _ *fakeBackend) { c.Step(time.Second) },
			want:    []backendCall{full}},
		{name: "the backend refuses a partial sync", diff: map[string]bool{key: true},
			prepare: func(_ *State, _ *testingclock.FakeClock, b *fakeBackend) { b.refusePartial = true },
			want:    []backendCall{partial(true), full}},
		{name: "partial again", diff: map[string]bool{key: true}, want: []backendCall{partial(false)}},
	}
	_, ctx := ktesting.NewTestContext(t)
	clock := testingclock.NewFakeClock(time.Unix(100000, 0))
	b := &fakeBackend{}
	p := &Proxier{
		cfg: Config{Backends: map[Family]Backend{IPv4: b}, Clock: clock},
		state: &syncState{
			applied:  map[Family]*State{},
			needFull: map[Family]bool{},
			lastFull: map[Family]time.Time{},
		},
	}
	st := &State{Family: IPv4, Services: []ServicePort{web}}
	for _, step := range steps {
		// A new State each time, as the Computer gives: the proxier
		// compares it with the one it last applied.
		next := *st
		if step.prepare != nil {
			step.prepare(&next, clock, b)
		}
		st = &next
		before := len(b.calls)
		err := p.syncFamily(ctx, IPv4, st, step.diff)
		if (err != nil) != step.wantErr {
			t.Fatalf("%s: syncFamily: %v, want error %v", step.name, err, step.wantErr)
		}
		got := b.calls[before:]
		if len(got) == 0 {
			got = nil
		}
		if diff := cmp.Diff(step.want, got, cmp.AllowUnexported(backendCall{})); diff != "" {
			t.Fatalf("%s: backend calls (-want +got):\n%s", step.name, diff)
		}
	}
}

// TestProxierSyncsFullWhenTheBackendAsks: a backend that finds out between
// syncs that it cannot trust its memory of the kernel (IPVS: a failed check
// of the draining destinations) refuses the next partial sync, and the
// proxier syncs in full at once; the sync succeeds and the proxy stays
// healthy.
func TestProxierSyncsFullWhenTheBackendAsks(t *testing.T) {
	h := newHarness(t, service("web", "10.96.0.10"))
	h.waitCalls(1, 0)
	h.backend.setRefusePartial()
	h.create(service("dns", "10.96.0.53", withPorts(port("dns", v1.ProtocolUDP, 53, 0))))
	calls, st := h.waitCalls(3, time.Second)
	want := []backendCall{{changed: nil}, {changed: []string{"ns/dns:dns/UDP"}, err: true}, {changed: nil}}
	if diff := cmp.Diff(want, calls, cmp.AllowUnexported(backendCall{})); diff != "" {
		t.Fatalf("backend calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ns/dns:dns/UDP", "ns/web:http/TCP"}, serviceKeys(st)); diff != "" {
		t.Fatalf("services (-want +got):\n%s", diff)
	}
	if err := h.proxier.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}
