package podruntime

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	testingclock "k8s.io/utils/clock/testing"
)

// t0 is an arbitrary fixed time for the back-off tests.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestBackoff(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	b := newBackoff(10*time.Second, 300*time.Second, clk)
	now := t0
	exit := now
	if got := b.Remaining("a", exit); got != 0 {
		t.Fatalf("first restart waits %s, want 0", got)
	}
	var delays []time.Duration
	for range 7 {
		clk.SetTime(now)
		b.Next("a", exit)
		delays = append(delays, b.Delay("a"))
		exit = now.Add(time.Second)
		now = exit
	}
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300}
	for i := range want {
		want[i] *= time.Second
	}
	if diff := cmp.Diff(want, delays); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
	clk.SetTime(exit.Add(100 * time.Second))
	if got := b.Remaining("a", exit); got != 200*time.Second {
		t.Errorf("remaining %s, want 200s", got)
	}
	// A container that ran for more than 10 minutes starts over.
	late := now.Add(11 * time.Minute)
	clk.SetTime(late)
	if got := b.Remaining("a", late); got != 0 {
		t.Errorf("remaining after a long run %s, want 0", got)
	}
	b.Next("a", late)
	if got := b.Delay("a"); got != 10*time.Second {
		t.Errorf("delay after a long run %s, want 10s", got)
	}
	clk.SetTime(late.Add(4 * time.Second))
	if got := b.RemainingSinceLast("a"); got != 6*time.Second {
		t.Errorf("remaining since last %s, want 6s", got)
	}
}
