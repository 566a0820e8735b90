package systemd_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/systemd"
	sdtesting "github.com/berthnode/berth/systemd/testing"
)

func TestWatchdogTimeout(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name     string
		usec     string
		pid      string
		want     time.Duration
		wantFail bool
	}{
		{name: "unset", want: 0},
		{name: "for berth", usec: "60000000", pid: self, want: time.Minute},
		{name: "no pid given", usec: "30000000", want: 30 * time.Second},
		{name: "for another process", usec: "60000000", pid: "1", want: 0},
		{name: "malformed", usec: "sixty", pid: self, wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			if tt.usec == "" {
				os.Unsetenv("WATCHDOG_USEC")
			}
			got, err := systemd.WatchdogTimeout()
			if (err != nil) != tt.wantFail || got != tt.want {
				t.Errorf("WatchdogTimeout() = %v, %v; want %v, error %v", got, err, tt.want, tt.wantFail)
			}
		})
	}
}

// watchdogTest runs a Watchdog whose one check fails while healthy is
// false, and reports each round of checks on rounds.
type watchdogTest struct {
	socket  *sdtesting.NotifySocket
	clock   *testingclock.FakeClock
	healthy atomic.Bool
	rounds  chan struct{}
}

func startWatchdog(t *testing.T, timeout time.Duration) *watchdogTest {
	t.Helper()
	wt := &watchdogTest{
		socket: sdtesting.NewNotifySocket(t),
		clock:  testingclock.NewFakeClock(t0),
		rounds: make(chan struct{}, 100),
	}
	wt.healthy.Store(true)
	n, err := systemd.NewNotifier(wt.socket.Addr())
	if err != nil {
		t.Fatal(err)
	}
	w, err := systemd.NewWatchdog(systemd.WatchdogConfig{
		Notifier: n,
		Timeout:  timeout,
		Checks: []systemd.Check{{Name: "pod workers", Healthy: func() error {
			healthy := wt.healthy.Load()
			wt.rounds <- struct{}{}
			if !healthy {
				return errors.New("sync loop stuck for 5m")
			}
			return nil
		}}},
		Clock: wt.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil", err)
		}
	})
	return wt
}

// round steps the clock by d and waits for the round of checks it causes.
func (wt *watchdogTest) round(t *testing.T, d time.Duration) {
	t.Helper()
	wt.clock.Step(d)
	wt.awaitRound(t)
}

func (wt *watchdogTest) awaitRound(t *testing.T) {
	t.Helper()
	select {
	case <-wt.rounds:
	case <-time.After(10 * time.Second):
		t.Fatal("no round of health checks")
	}
}

// pings returns the keep-alives received once every datagram sent so far
// arrived: it sends a marker and waits for it, the socket keeping order.
func (wt *watchdogTest) pings(t *testing.T) int {
	t.Helper()
	marker := "marker " + strconv.Itoa(len(wt.socket.Messages()))
	n, err := systemd.NewNotifier(wt.socket.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Status(marker); err != nil {
		t.Fatal(err)
	}
	st, err := wt.socket.Wait(waitContext(t), func(s sdtesting.NotifyState) bool { return s.Status == marker })
	if err != nil {
		t.Fatal(err)
	}
	return st.WatchdogPings
}

func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	wt := startWatchdog(t, 10*time.Second)
	wt.awaitRound(t) // at start
	wt.round(t, 5*time.Second)
	wt.healthy.Store(false)
	wt.round(t, 5*time.Second)
	// The next round starts only after the unhealthy one ended.
	wt.round(t, 5*time.Second)
	if got := wt.pings(t); got != 2 {
		t.Errorf("keep-alives while unhealthy = %d, want 2 (from the healthy rounds only)", got)
	}
	wt.healthy.Store(true)
	wt.round(t, 5*time.Second)
	wt.round(t, 5*time.Second)
	if got := wt.pings(t); got < 3 {
		t.Errorf("keep-alives after recovering = %d, want them resumed", got)
	}
}

func TestWatchdogPacesAtHalfTheTimeout(t *testing.T) {
	wt := startWatchdog(t, 10*time.Second)
	wt.awaitRound(t)
	wt.clock.Step(4 * time.Second)
	select {
	case <-wt.rounds:
		t.Fatal("a round before half the timeout")
	default:
	}
	wt.round(t, time.Second)
}

func TestWatchdogDisabled(t *testing.T) {
	wt := startWatchdog(t, 0)
	wt.clock.Step(time.Hour)
	if got := wt.pings(t); got != 0 {
		t.Errorf("keep-alives without a watchdog = %d, want 0", got)
	}
}

func TestWatchdogConfigValidate(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	n, _ := systemd.NewNotifier("")
	tests := []struct {
		name    string
		cfg     systemd.WatchdogConfig
		wantErr bool
	}{
		{name: "valid", cfg: systemd.WatchdogConfig{Notifier: n, Timeout: time.Minute, Clock: clk}},
		{name: "disabled needs no notifier", cfg: systemd.WatchdogConfig{Clock: clk}},
		{name: "enabled without notifier", cfg: systemd.WatchdogConfig{Timeout: time.Minute, Clock: clk}, wantErr: true},
		{name: "negative timeout", cfg: systemd.WatchdogConfig{Notifier: n, Timeout: -1, Clock: clk}, wantErr: true},
		{name: "no clock", cfg: systemd.WatchdogConfig{Notifier: n}, wantErr: true},
		{name: "unnamed check", cfg: systemd.WatchdogConfig{Notifier: n, Clock: clk, Checks: []systemd.Check{{Healthy: func() error { return nil }}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := systemd.NewWatchdog(tt.cfg); (err != nil) != tt.wantErr {
				t.Errorf("NewWatchdog() error = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
