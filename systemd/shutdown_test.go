package systemd_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/systemd"
	sdtesting "github.com/berthnode/berth/systemd/testing"
)

// t0 is when every fake clock starts.
var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func TestPlanShutdown(t *testing.T) {
	tests := []struct {
		name                                string
		gracePeriod, critical, inhibitDelay time.Duration
		want                                systemd.ShutdownPlan
	}{
		{
			name:        "logind grants the grace period",
			gracePeriod: 30 * time.Second, critical: 10 * time.Second, inhibitDelay: 30 * time.Second,
			want: systemd.ShutdownPlan{RegularPods: 20 * time.Second, CriticalPods: 10 * time.Second},
		},
		{
			name:        "logind grants more",
			gracePeriod: 30 * time.Second, critical: 10 * time.Second, inhibitDelay: time.Hour,
			want: systemd.ShutdownPlan{RegularPods: 20 * time.Second, CriticalPods: 10 * time.Second},
		},
		{
			name:        "regular pods lose what logind does not grant",
			gracePeriod: 30 * time.Second, critical: 10 * time.Second, inhibitDelay: 15 * time.Second,
			want: systemd.ShutdownPlan{RegularPods: 5 * time.Second, CriticalPods: 10 * time.Second},
		},
		{
			name:        "critical pods keep what logind grants",
			gracePeriod: 30 * time.Second, critical: 10 * time.Second, inhibitDelay: 5 * time.Second,
			want: systemd.ShutdownPlan{RegularPods: 0, CriticalPods: 5 * time.Second},
		},
		{
			name:        "no time reserved for critical pods",
			gracePeriod: 30 * time.Second, critical: 0, inhibitDelay: 30 * time.Second,
			want: systemd.ShutdownPlan{RegularPods: 30 * time.Second, CriticalPods: 0},
		},
		{
			name:        "all the time for critical pods",
			gracePeriod: 30 * time.Second, critical: 30 * time.Second, inhibitDelay: 30 * time.Second,
			want: systemd.ShutdownPlan{RegularPods: 0, CriticalPods: 30 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := systemd.PlanShutdown(tt.gracePeriod, tt.critical, tt.inhibitDelay)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PlanShutdown() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShutdownConfigValidate(t *testing.T) {
	logind := sdtesting.NewFakeLogind("")
	valid := func() systemd.ShutdownConfig {
		return systemd.ShutdownConfig{
			Dial:                    logind.Dial,
			Handler:                 &fakeHandler{},
			GracePeriod:             30 * time.Second,
			CriticalPodsGracePeriod: 10 * time.Second,
			Clock:                   testingclock.NewFakeClock(t0),
		}
	}
	tests := []struct {
		name    string
		modify  func(*systemd.ShutdownConfig)
		wantErr bool
	}{
		{name: "valid", modify: func(*systemd.ShutdownConfig) {}},
		{name: "no time for regular pods", modify: func(c *systemd.ShutdownConfig) { c.CriticalPodsGracePeriod = c.GracePeriod }},
		{name: "graceful shutdown off", modify: func(c *systemd.ShutdownConfig) { c.GracePeriod, c.CriticalPodsGracePeriod = 0, 0 }, wantErr: true},
		{name: "critical above total", modify: func(c *systemd.ShutdownConfig) { c.CriticalPodsGracePeriod = time.Minute }, wantErr: true},
		{name: "negative critical", modify: func(c *systemd.ShutdownConfig) { c.CriticalPodsGracePeriod = -time.Second }, wantErr: true},
		{name: "no dial", modify: func(c *systemd.ShutdownConfig) { c.Dial = nil }, wantErr: true},
		{name: "no handler", modify: func(c *systemd.ShutdownConfig) { c.Handler = nil }, wantErr: true},
		{name: "no clock", modify: func(c *systemd.ShutdownConfig) { c.Clock = nil }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.modify(&cfg)
			if _, err := systemd.NewShutdownManager(cfg); (err != nil) != tt.wantErr {
				t.Errorf("NewShutdownManager() error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// stopCall is one StopPods call a fakeHandler received.
type stopCall struct {
	Class       systemd.PodClass
	GracePeriod time.Duration
	At          time.Time
}

// fakeHandler records what the manager asks of berth; StopPods of a
// blocked class returns only when its context ends, as pods that do not
// stop in time.
type fakeHandler struct {
	clock   *testingclock.FakeClock
	blocked map[systemd.PodClass]bool

	mu    sync.Mutex
	marks []bool
	stops []stopCall
}

func (h *fakeHandler) SetShuttingDown(_ context.Context, shuttingDown bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.marks = append(h.marks, shuttingDown)
	return nil
}

func (h *fakeHandler) StopPods(ctx context.Context, class systemd.PodClass, gracePeriod time.Duration) error {
	h.mu.Lock()
	h.stops = append(h.stops, stopCall{Class: class, GracePeriod: gracePeriod, At: h.clock.Now()})
	blocked := h.blocked[class]
	h.mu.Unlock()
	if blocked {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (h *fakeHandler) state() ([]bool, []stopCall) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bool(nil), h.marks...), append([]stopCall(nil), h.stops...)
}

// shutdownTest is a ShutdownManager running against a fake logind.
type shutdownTest struct {
	logind  *sdtesting.FakeLogind
	handler *fakeHandler
	clock   *testingclock.FakeClock
	manager *systemd.ShutdownManager
	confDir string
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
}

// startShutdownTest runs a manager with a 30s grace period, 10s of it for
// critical pods, after prepare set up the fakes.
func startShutdownTest(t *testing.T, prepare func(*shutdownTest)) *shutdownTest {
	t.Helper()
	confDir := filepath.Join(t.TempDir(), "logind.conf.d")
	clk := testingclock.NewFakeClock(t0)
	st := &shutdownTest{
		logind:  sdtesting.NewFakeLogind(confDir),
		handler: &fakeHandler{clock: clk, blocked: map[systemd.PodClass]bool{}},
		clock:   clk,
		confDir: confDir,
		done:    make(chan error, 1),
	}
	cfg := systemd.ShutdownConfig{
		Dial:                    st.logind.Dial,
		Handler:                 st.handler,
		GracePeriod:             30 * time.Second,
		CriticalPodsGracePeriod: 10 * time.Second,
		LogindConfDir:           confDir,
		Clock:                   clk,
	}
	if prepare != nil {
		prepare(st)
	}
	if st.confDir == "" {
		cfg.LogindConfDir = ""
	}
	m, err := systemd.NewShutdownManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.manager = m
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	st.cancel = cancel
	go func() { st.done <- m.Run(ctx) }()
	t.Cleanup(func() { st.stop(t) })
	return st
}

// stop cancels Run and checks that it returns nil.
func (st *shutdownTest) stop(t *testing.T) {
	t.Helper()
	st.stopped.Do(func() {
		st.cancel()
		select {
		case err := <-st.done:
			if err != nil {
				t.Errorf("Run() = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run() did not return after its context ended")
		}
	})
}

// waitFor waits for cond on the fakes.
func (st *shutdownTest) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.logind.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// poll waits for a condition the fake logind does not see change, such as
// the manager waiting on its clock.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// berthLock is the inhibitor lock berth takes.
func berthLock() []systemd.InhibitRequest {
	return []systemd.InhibitRequest{{
		What: "shutdown",
		Who:  "berth",
		Why:  "berth stops the node's pods gracefully before the node shuts down",
		Mode: "delay",
	}}
}

// locked reports whether exactly berth's lock is held.
func (st *shutdownTest) locked() bool { return cmp.Equal(berthLock(), st.logind.Locks()) }

// unlocked reports whether no lock is held.
func (st *shutdownTest) unlocked() bool { return len(st.logind.Locks()) == 0 }

func TestShutdownStopsPodsThenReleasesTheLock(t *testing.T) {
	st := startShutdownTest(t, nil)
	st.waitFor(t, "berth's lock", st.locked)

	// logind's default 5s was raised to the grace period.
	data, err := os.ReadFile(filepath.Join(st.confDir, systemd.LogindDropInName))
	if err != nil {
		t.Fatalf("logind drop-in: %v", err)
	}
	if want := "[Login]\nInhibitDelayMaxSec=30\n"; !strings.Contains(string(data), want) {
		t.Errorf("logind drop-in = %q, want it to contain %q", data, want)
	}
	if got := st.logind.Reloads(); got != 1 {
		t.Errorf("logind reloaded %d times, want 1", got)
	}
	if st.manager.ShuttingDown() {
		t.Errorf("ShuttingDown() before any shutdown = true")
	}

	st.logind.StartShutdown()
	st.waitFor(t, "the lock released", st.unlocked)
	poll(t, "the node marked", func() bool { marks, _ := st.handler.state(); return len(marks) == 1 })
	marks, stops := st.handler.state()
	if diff := cmp.Diff([]bool{true}, marks); diff != "" {
		t.Errorf("node marks (-want +got):\n%s", diff)
	}
	wantStops := []stopCall{
		{Class: systemd.RegularPods, GracePeriod: 20 * time.Second, At: t0},
		{Class: systemd.CriticalPods, GracePeriod: 10 * time.Second, At: t0},
	}
	if diff := cmp.Diff(wantStops, stops); diff != "" {
		t.Errorf("StopPods calls (-want +got):\n%s", diff)
	}
	if !st.manager.ShuttingDown() {
		t.Errorf("ShuttingDown() during the shutdown = false")
	}
	if st.logind.ShutdownHeld() {
		t.Errorf("logind's shutdown still held after the pods stopped")
	}
}

func TestShutdownCriticalPodsGetTheirShareWhenRegularPodsOverrun(t *testing.T) {
	st := startShutdownTest(t, func(st *shutdownTest) { st.handler.blocked[systemd.RegularPods] = true })
	st.waitFor(t, "berth's lock", st.locked)
	st.logind.StartShutdown()
	poll(t, "regular pods stopping and the manager waiting", func() bool {
		_, stops := st.handler.state()
		return len(stops) == 1 && st.clock.HasWaiters()
	})
	if !st.logind.ShutdownHeld() {
		t.Errorf("logind's shutdown not held while regular pods stop")
	}
	st.clock.Step(20 * time.Second)
	poll(t, "critical pods stopping", func() bool { _, stops := st.handler.state(); return len(stops) == 2 })
	// Regular pods are still waited for, up to the end of the grace
	// period.
	if !st.locked() {
		t.Errorf("lock released while regular pods still stop within the grace period")
	}
	poll(t, "the manager waiting for the end of the grace period", st.clock.HasWaiters)
	st.clock.Step(10 * time.Second)
	st.waitFor(t, "the lock released", st.unlocked)
	_, stops := st.handler.state()
	wantStops := []stopCall{
		{Class: systemd.RegularPods, GracePeriod: 20 * time.Second, At: t0},
		{Class: systemd.CriticalPods, GracePeriod: 10 * time.Second, At: t0.Add(20 * time.Second)},
	}
	if diff := cmp.Diff(wantStops, stops); diff != "" {
		t.Errorf("StopPods calls (-want +got):\n%s", diff)
	}
}

func TestShutdownCancelledTakesTheLockAgain(t *testing.T) {
	st := startShutdownTest(t, nil)
	st.waitFor(t, "berth's lock", st.locked)
	st.logind.StartShutdown()
	st.waitFor(t, "the lock released", st.unlocked)
	st.logind.CancelShutdown()
	st.waitFor(t, "berth's lock again", st.locked)
	poll(t, "the node unmarked", func() bool { marks, _ := st.handler.state(); return len(marks) == 2 })
	marks, _ := st.handler.state()
	if diff := cmp.Diff([]bool{true, false}, marks); diff != "" {
		t.Errorf("node marks (-want +got):\n%s", diff)
	}
	if st.manager.ShuttingDown() {
		t.Errorf("ShuttingDown() after the cancellation = true")
	}
}

func TestShutdownWithinLogindsLimitWhenNotAllowedToRaiseIt(t *testing.T) {
	st := startShutdownTest(t, func(st *shutdownTest) { st.confDir = "" })
	st.waitFor(t, "berth's lock", st.locked)
	if got := st.logind.Reloads(); got != 0 {
		t.Errorf("logind reloaded %d times, want 0", got)
	}
	st.logind.StartShutdown()
	st.waitFor(t, "the lock released", st.unlocked)
	_, stops := st.handler.state()
	// Regular pods get no time: they are killed at once, alongside the
	// critical ones.
	wantStops := []stopCall{
		{Class: systemd.CriticalPods, GracePeriod: sdtesting.DefaultInhibitDelayMax, At: t0},
		{Class: systemd.RegularPods, GracePeriod: 0, At: t0},
	}
	byClass := cmpopts.SortSlices(func(a, b stopCall) bool { return a.Class < b.Class })
	if diff := cmp.Diff(wantStops, stops, byClass); diff != "" {
		t.Errorf("StopPods calls (-want +got):\n%s", diff)
	}
}

func TestShutdownLeavesAHighEnoughLogindAlone(t *testing.T) {
	st := startShutdownTest(t, func(st *shutdownTest) {
		if err := st.logind.SetInhibitDelayMax(time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	st.waitFor(t, "berth's lock", st.locked)
	if got := st.logind.Reloads(); got != 1 {
		t.Errorf("logind reloaded %d times, want only the test's", got)
	}
	if _, err := os.Stat(st.confDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("logind drop-in directory: %v, want none written", err)
	}
}

func TestShutdownReconnectsAfterLosingLogind(t *testing.T) {
	st := startShutdownTest(t, nil)
	st.waitFor(t, "berth's lock", st.locked)
	st.logind.Disconnect()
	st.waitFor(t, "the old lock released", st.unlocked)
	poll(t, "the manager waiting to retry", st.clock.HasWaiters)
	st.clock.Step(time.Second)
	st.waitFor(t, "berth's lock on the new connection", func() bool { return st.locked() && st.logind.Subscribers() == 1 })
	st.logind.StartShutdown()
	st.waitFor(t, "the lock released", st.unlocked)
}

func TestShutdownWaitsForLogind(t *testing.T) {
	st := startShutdownTest(t, func(st *shutdownTest) { st.logind.FailDial(errors.New("no system bus")) })
	poll(t, "the manager waiting to retry", st.clock.HasWaiters)
	st.clock.Step(time.Second)
	poll(t, "the manager waiting longer", st.clock.HasWaiters)
	st.logind.FailDial(nil)
	st.clock.Step(2 * time.Second)
	st.waitFor(t, "berth's lock", st.locked)
}

func TestShutdownReleasesTheLockWhenBerthStops(t *testing.T) {
	st := startShutdownTest(t, nil)
	st.waitFor(t, "berth's lock", st.locked)
	st.stop(t)
	if !st.unlocked() {
		t.Errorf("locks after Run returned: %v, want none", st.logind.Locks())
	}
	if got := st.logind.Subscribers(); got != 0 {
		t.Errorf("%d subscriptions left open, want 0", got)
	}
}

func TestShutdownWithinLogindsLimitWhenRaisingItFails(t *testing.T) {
	st := startShutdownTest(t, func(st *shutdownTest) {
		// A file where the drop-in directory should be: writing fails.
		if err := os.WriteFile(st.confDir, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	st.waitFor(t, "berth's lock", st.locked)
	st.logind.StartShutdown()
	st.waitFor(t, "the lock released", st.unlocked)
	_, stops := st.handler.state()
	byClass := cmpopts.SortSlices(func(a, b stopCall) bool { return a.Class < b.Class })
	wantStops := []stopCall{
		{Class: systemd.CriticalPods, GracePeriod: sdtesting.DefaultInhibitDelayMax, At: t0},
		{Class: systemd.RegularPods, GracePeriod: 0, At: t0},
	}
	if diff := cmp.Diff(wantStops, stops, byClass); diff != "" {
		t.Errorf("StopPods calls (-want +got):\n%s", diff)
	}
}
