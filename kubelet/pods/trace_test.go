package pods

import (
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"
)

func TestStartTrace(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tr := &startTrace{clock: clk, seen: clk.Now()}
	step := func(d time.Duration, name string) {
		clk.Step(d)
		tr.mark(name)
	}
	step(10*time.Millisecond, "queued")
	step(100*time.Millisecond, "volumes")
	step(time.Second, "queued") // a retried sync: the later time counts
	step(200*time.Millisecond, "volumes")
	step(300*time.Millisecond, "sandbox")
	clk.Step(50 * time.Millisecond)
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2), ktesting.BufferLogs(true)))
	tr.log(logger)
	got := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
	want := `Observed pod startup total="1.66s" queued="1.11s" volumes="200ms" sandbox="300ms" statusSent="50ms"`
	if !strings.Contains(got, want) {
		t.Errorf("log = %q, want it to contain %q", got, want)
	}
	var none *startTrace
	none.mark("queued") // a pod that started already: nothing to note, no panic
}
