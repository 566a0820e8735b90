package pods

import (
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// startTrace follows a new pod through the steps of its start, so that the
// log tells where the time of a slow start went: from the moment berth saw
// the pod to the status that first showed it running. It belongs to the
// worker's goroutine.
type startTrace struct {
	clock clock.PassiveClock
	seen  time.Time
	steps []traceStep
	// running is set when the status first shows the pod running; the
	// trace is logged once that status is sent.
	running bool
}

type traceStep struct {
	name string
	at   time.Time
}

// mark notes that step ended now; a nil trace (the pod started already)
// notes nothing. A step seen again (a retried sync) keeps its last time.
func (t *startTrace) mark(step string) {
	if t == nil {
		return
	}
	now := t.clock.Now()
	for i := range t.steps {
		if t.steps[i].name == step {
			t.steps[i].at = now
			return
		}
	}
	t.steps = append(t.steps, traceStep{name: step, at: now})
}

// log writes the trace as one line: the total, then each step's share in
// the order the steps were first reached.
func (t *startTrace) log(logger klog.Logger) {
	now := t.clock.Now()
	kv := []any{"total", now.Sub(t.seen).Round(time.Millisecond)}
	prev := t.seen
	for _, s := range t.steps {
		kv = append(kv, s.name, s.at.Sub(prev).Round(time.Millisecond))
		prev = s.at
	}
	kv = append(kv, "statusSent", now.Sub(prev).Round(time.Millisecond))
	logger.V(2).Info("Observed pod startup", kv...)
}
