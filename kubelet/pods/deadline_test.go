package pods

import (
	"context"
	"testing"
	"time"

	"github.com/berthnode/berth/kubelet/podstatus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestActiveDeadline(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type input struct {
		pod   *v1.Pod
		start *metav1.Time
	}
	pod := func(deadline *int64, startTime *time.Time) input {
		in := input{pod: &v1.Pod{Spec: v1.PodSpec{ActiveDeadlineSeconds: deadline}}}
		if startTime != nil {
			in.start = &metav1.Time{Time: *startTime}
		}
		return in
	}
	tests := []struct {
		name     string
		in       input
		now      time.Time
		exceeded bool
		left     time.Duration
	}{
		{"no deadline", pod(nil, &start), start.Add(time.Hour), false, 0},
		{"no start time yet", pod(ptr.To[int64](5), nil), start.Add(time.Hour), false, 0},
		{"zero start time", pod(ptr.To[int64](5), &time.Time{}), start.Add(time.Hour), false, 0},
		{"before the deadline", pod(ptr.To[int64](30), &start), start.Add(10 * time.Second), false, 20 * time.Second},
		{"just before", pod(ptr.To[int64](30), &start), start.Add(30*time.Second - time.Nanosecond), false, time.Nanosecond},
		{"at the deadline", pod(ptr.To[int64](30), &start), start.Add(30 * time.Second), true, 0},
		{"past it", pod(ptr.To[int64](30), &start), start.Add(time.Minute), true, 0},
		// The field may be lowered on a running pod below the time it ran.
		{"lowered below the time run", pod(ptr.To[int64](5), &start), start.Add(10 * time.Minute), true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exceeded, left := activeDeadline(tt.in.pod, tt.in.start, tt.now)
			if exceeded != tt.exceeded || left != tt.left {
				t.Errorf("activeDeadline = %v, %v; want %v, %v", exceeded, left, tt.exceeded, tt.left)
			}
		})
	}
}

func TestUntilDeadline(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := &v1.Pod{Spec: v1.PodSpec{ActiveDeadlineSeconds: ptr.To[int64](30)}}
	st := &metav1.Time{Time: start}
	if got := untilDeadline(p, st, start.Add(20*time.Second), time.Minute); got != 10*time.Second {
		t.Errorf("next sync in %v, want 10s (at the deadline)", got)
	}
	if got := untilDeadline(p, st, start.Add(20*time.Second), time.Second); got != time.Second {
		t.Errorf("next sync in %v, want 1s (sooner than the deadline)", got)
	}
	p.Spec.ActiveDeadlineSeconds = nil
	if got := untilDeadline(p, st, start, time.Minute); got != time.Minute {
		t.Errorf("next sync in %v without a deadline, want 1m", got)
	}
}

// deadlineExceeded tells whether the pod's status says it was stopped for
// its active deadline.
func (h *harness) deadlineExceeded(name string) bool {
	p := h.pod(name)
	return p != nil && p.Status.Phase == v1.PodFailed && p.Status.Reason == podstatus.ReasonDeadlineExceeded
}

func TestActiveDeadlineStopsPod(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	pod := testPod("deadline", ctr("app"))
	pod.Spec.ActiveDeadlineSeconds = ptr.To[int64](30)
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](7)
	h.create(pod)
	h.eventually("app running", func() bool { return h.running("deadline", "app") })
	appID := h.containerID("deadline", "app")
	start := h.pod("deadline").Status.StartTime
	if start == nil {
		t.Fatal("no start time")
	}

	// Short of the deadline, the pod runs on.
	h.clock.SetTime(start.Add(29 * time.Second))
	if h.settle(func() bool { return h.deadlineExceeded("deadline") }) {
		t.Fatal("pod stopped before its deadline")
	}
	// The worker wakes at the deadline, not at its next resync a minute
	// after the last one.
	h.clock.SetTime(start.Add(31 * time.Second))
	h.eventually("pod failed for its deadline", func() bool { return h.deadlineExceeded("deadline") })

	p := h.pod("deadline")
	if p.Status.Message != podstatus.MessageDeadlineExceeded {
		t.Errorf("message %q, want %q", p.Status.Message, podstatus.MessageDeadlineExceeded)
	}
	for _, c := range p.Status.Conditions {
		if (c.Type == v1.PodReady || c.Type == v1.ContainersReady) && c.Status != v1.ConditionFalse {
			t.Errorf("condition %s = %s, want False", c.Type, c.Status)
		}
	}
	if got, ok := h.rt.StopTimeout(appID); !ok || got != 7 {
		t.Errorf("app stopped with grace period %d (stopped: %v), want 7 s", got, ok)
	}
	if s := h.status("deadline", "app"); s.State.Terminated == nil {
		t.Errorf("app state %+v, want terminated", s.State)
	}
	if !h.events.Has("deadline", podstatus.ReasonDeadlineExceeded, podstatus.MessageDeadlineExceeded) {
		t.Error("no DeadlineExceeded event")
	}
	h.waitFor("volumes torn down", func() bool { return h.volumes.TornDown(pod.UID) })

	// Nothing starts again, however long it waits.
	h.clock.Step(5 * time.Minute)
	h.waitFor("a relist or two", func() bool { return h.clock.Since(start.Time) > 6*time.Minute })
	if n := h.count("deadline", "app"); n != 1 {
		t.Errorf("%d app containers, want the one that was stopped", n)
	}
	if n := h.events.Count("deadline", podstatus.ReasonDeadlineExceeded); n != 1 {
		t.Errorf("%d DeadlineExceeded events, want 1", n)
	}
}

func TestActiveDeadlineLoweredOnRunningPod(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	h.create(testPod("lowered", ctr("app")))
	h.eventually("app running", func() bool { return h.running("lowered", "app") })
	start := h.pod("lowered").Status.StartTime
	// The pod runs for ten minutes without a deadline.
	h.clock.Step(10 * time.Minute)
	if h.settle(func() bool { return h.deadlineExceeded("lowered") }) {
		t.Fatal("pod without a deadline stopped")
	}

	// As the conformance test does: the deadline set to 5 s on the running
	// pod, long past already.
	p := h.pod("lowered")
	if !p.Status.StartTime.Equal(start) {
		t.Errorf("start time moved from %v to %v", start, p.Status.StartTime)
	}
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](5)
	if _, err := h.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("pod failed for its deadline", func() bool { return h.deadlineExceeded("lowered") })
	if h.running("lowered", "app") {
		t.Error("app still running")
	}
}
