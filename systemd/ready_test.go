package systemd_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/systemd"
	sdtesting "github.com/berthnode/berth/systemd/testing"
)

// readinessTest runs ReportReadiness on two conditions.
type readinessTest struct {
	socket             *sdtesting.NotifySocket
	clock              *testingclock.FakeClock
	registered, synced atomic.Bool
	done               chan error
}

func startReadiness(t *testing.T) *readinessTest {
	t.Helper()
	rt := &readinessTest{socket: sdtesting.NewNotifySocket(t), clock: testingclock.NewFakeClock(t0), done: make(chan error, 1)}
	n, err := systemd.NewNotifier(rt.socket.Addr())
	if err != nil {
		t.Fatal(err)
	}
	cfg := systemd.ReadinessConfig{
		Notifier: n,
		Conditions: []systemd.Condition{
			{Name: "node registration", Met: rt.registered.Load},
			{Name: "first service sync", Met: rt.synced.Load},
		},
		MaxWait:  2 * time.Minute,
		Interval: time.Second,
		Clock:    rt.clock,
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go func() { rt.done <- systemd.ReportReadiness(ctx, cfg) }()
	return rt
}

// await waits for the state cond describes.
func (rt *readinessTest) await(t *testing.T, what string, cond func(sdtesting.NotifyState) bool) sdtesting.NotifyState {
	t.Helper()
	st, err := rt.socket.Wait(waitContext(t), cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v (state %+v)", what, err, st)
	}
	return st
}

// finished waits for ReportReadiness to return nil.
func (rt *readinessTest) finished(t *testing.T) {
	t.Helper()
	select {
	case err := <-rt.done:
		if err != nil {
			t.Errorf("ReportReadiness() = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReportReadiness() did not return once ready")
	}
}

func TestReportReadinessWhenConditionsAreMet(t *testing.T) {
	rt := startReadiness(t)
	rt.await(t, "start-up status", func(s sdtesting.NotifyState) bool {
		return s.Status == "Starting; waiting for node registration, first service sync"
	})
	rt.registered.Store(true)
	rt.clock.Step(time.Second)
	rt.await(t, "one condition left", func(s sdtesting.NotifyState) bool { return s.Status == "Starting; waiting for first service sync" })
	rt.synced.Store(true)
	rt.clock.Step(time.Second)
	got := rt.await(t, "ready", func(s sdtesting.NotifyState) bool { return s.Ready })
	if diff := cmp.Diff(sdtesting.NotifyState{Ready: true, Status: "Running"}, got); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	rt.finished(t)
}

func TestReportReadinessAfterMaxWait(t *testing.T) {
	rt := startReadiness(t)
	rt.registered.Store(true)
	rt.await(t, "start-up status", func(s sdtesting.NotifyState) bool { return s.Status != "" })
	rt.clock.Step(2 * time.Minute)
	got := rt.await(t, "ready", func(s sdtesting.NotifyState) bool { return s.Ready })
	if want := "Running; waiting for first service sync"; got.Status != want {
		t.Errorf("status when ready early = %q, want %q", got.Status, want)
	}
	rt.synced.Store(true)
	rt.clock.Step(time.Second)
	rt.await(t, "running", func(s sdtesting.NotifyState) bool { return s.Status == "Running" })
	rt.finished(t)
	if got := len(rt.socket.Messages()); got > 4 {
		t.Errorf("sent %d messages, want one per change: %q", got, rt.socket.Messages())
	}
}

func TestReportReadinessWithNothingToWaitFor(t *testing.T) {
	rt := startReadiness(t)
	rt.registered.Store(true)
	rt.synced.Store(true)
	rt.clock.Step(time.Second)
	rt.await(t, "ready", func(s sdtesting.NotifyState) bool { return s.Ready && s.Status == "Running" })
	rt.finished(t)
}

func TestReadinessConfigValidate(t *testing.T) {
	n, _ := systemd.NewNotifier("")
	clk := testingclock.NewFakeClock(t0)
	valid := systemd.ReadinessConfig{Notifier: n, MaxWait: time.Minute, Interval: time.Second, Clock: clk}
	tests := []struct {
		name    string
		modify  func(*systemd.ReadinessConfig)
		wantErr bool
	}{
		{name: "valid", modify: func(*systemd.ReadinessConfig) {}},
		{name: "no notifier", modify: func(c *systemd.ReadinessConfig) { c.Notifier = nil }, wantErr: true},
		{name: "no max wait", modify: func(c *systemd.ReadinessConfig) { c.MaxWait = 0 }, wantErr: true},
		{name: "no interval", modify: func(c *systemd.ReadinessConfig) { c.Interval = 0 }, wantErr: true},
		{name: "condition without func", modify: func(c *systemd.ReadinessConfig) { c.Conditions = []systemd.Condition{{Name: "x"}} }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.modify(&cfg)
			if err := cfg.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
