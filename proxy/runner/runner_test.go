package runner

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/clock"
	testingclock "k8s.io/utils/clock/testing"
)

// sleepClock is a fake clock that records every timer the runner sets: each
// timer is the runner going back to sleep, which is how the tests know it
// has finished reacting to a poke or a tick.
type sleepClock struct {
	*testingclock.FakeClock
	mu     sync.Mutex
	sleeps []time.Duration
}

func (c *sleepClock) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return c.FakeClock.NewTimer(d)
}

// waitSleep waits until the runner set its n-th timer and returns its
// duration.
func (c *sleepClock) waitSleep(t *testing.T, n int) time.Duration {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		if len(c.sleeps) >= n {
			d := c.sleeps[n-1]
			c.mu.Unlock()
			// The timer is created before it is waited on; wait for the
			// waiter too so that a Step fires it.
			for !c.HasWaiters() && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			return d
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("runner did not go to sleep a %d. time", n)
	return 0
}

// worker is the runner's Func: it counts calls and fails when told.
type worker struct {
	mu    sync.Mutex
	calls int
	fail  bool
}

func (w *worker) run(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.fail {
		return errors.New("boom")
	}
	return nil
}

func (w *worker) set(fail bool) (calls int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fail = fail
	return w.calls
}

type action struct {
	name string
	// trigger pokes the runner; step advances the clock; retry calls
	// RetryAfter.
	trigger bool
	step    time.Duration
	retry   time.Duration
	// fail makes every run from now on fail (or succeed).
	fail bool
	// wantCalls is the number of runs so far; wantSleep the timer the
	// runner then sets.
	wantCalls int
	wantSleep time.Duration
}

func TestRunner(t *testing.T) {
	const (
		minI  = time.Second
		maxI  = time.Minute
		retry = 10 * time.Second
	)
	tests := []struct {
		name    string
		actions []action
	}{{
		name: "first poke runs at once, then max interval",
		actions: []action{
			{name: "trigger", trigger: true, wantCalls: 1, wantSleep: maxI},
			{name: "max interval passes", step: maxI, wantCalls: 2, wantSleep: maxI},
		},
	}, {
		name: "pokes within min interval are deferred and coalesced",
		actions: []action{
			{name: "trigger", trigger: true, wantCalls: 1, wantSleep: maxI},
			{name: "tick", step: 300 * time.Millisecond, trigger: true, wantCalls: 1, wantSleep: 700 * time.Millisecond},
			{name: "poke again", trigger: true, wantCalls: 1, wantSleep: 700 * time.Millisecond},
			{name: "min interval over", step: 700 * time.Millisecond, wantCalls: 2, wantSleep: maxI},
		},
	}, {
		name: "poke after min interval runs at once",
		actions: []action{
			{name: "trigger", trigger: true, wantCalls: 1, wantSleep: maxI},
			{name: "later", step: 5 * time.Second, trigger: true, wantCalls: 2, wantSleep: maxI},
		},
	}, {
		name: "failure retries after retry interval, success resets",
		actions: []action{
			{name: "failing run", fail: true, trigger: true, wantCalls: 1, wantSleep: retry},
			{name: "retry fails too", fail: true, step: retry, wantCalls: 2, wantSleep: retry},
			{name: "retry succeeds", step: retry, wantCalls: 3, wantSleep: maxI},
		},
	}, {
		name: "RetryAfter pulls the next run in",
		actions: []action{
			{name: "trigger", trigger: true, wantCalls: 1, wantSleep: maxI},
			{name: "retry in 5s", retry: 5 * time.Second, wantCalls: 1, wantSleep: 5 * time.Second},
			{name: "runs", step: 5 * time.Second, wantCalls: 2, wantSleep: maxI},
		},
	}, {
		name: "RetryAfter never beats min interval",
		actions: []action{
			{name: "trigger", trigger: true, wantCalls: 1, wantSleep: maxI},
			{name: "retry now", retry: time.Millisecond, wantCalls: 1, wantSleep: minI},
			{name: "runs", step: minI, wantCalls: 2, wantSleep: maxI},
		},
	}, {
		name: "no poke: first run after max interval",
		actions: []action{
			{name: "max interval", step: maxI, wantCalls: 1, wantSleep: maxI},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &sleepClock{FakeClock: testingclock.NewFakeClock(time.Unix(1000, 0))}
			w := &worker{}
			r, err := New(Config{Name: "test", Func: w.run, MinInterval: minI, MaxInterval: maxI, RetryInterval: retry, Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			sleeps := 1
			if got := clk.waitSleep(t, sleeps); got != maxI {
				t.Fatalf("initial sleep %v, want %v", got, maxI)
			}
			for _, a := range tt.actions {
				w.set(a.fail)
				if a.step != 0 {
					clk.Step(a.step)
				}
				if a.trigger {
					r.Trigger()
				}
				if a.retry != 0 {
					r.RetryAfter(a.retry)
				}
				sleeps++
				gotSleep := clk.waitSleep(t, sleeps)
				got := []any{w.set(a.fail), gotSleep}
				if diff := cmp.Diff([]any{a.wantCalls, a.wantSleep}, got); diff != "" {
					t.Fatalf("%s: [calls, sleep] (-want +got):\n%s", a.name, diff)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "defaults", cfg: Config{Func: func(context.Context) error { return nil }}},
		{name: "no func", cfg: Config{}, wantErr: true},
		{name: "max below min", cfg: Config{Func: func(context.Context) error { return nil }, MinInterval: time.Minute, MaxInterval: time.Second}, wantErr: true},
		{name: "negative retry", cfg: Config{Func: func(context.Context) error { return nil }, RetryInterval: -time.Second}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New: err %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
