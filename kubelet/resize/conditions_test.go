package resize

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPendingCondition(t *testing.T) {
	now := time.Unix(1000, 0)
	var c Conditions
	if !c.SetPending("OutOfcpu", "no room", 2, now) || c.Pending.Reason != ReasonDeferred {
		t.Fatalf("first pending: %+v", c.Pending)
	}
	if c.SetPending(ReasonDeferred, "still no room", 2, now.Add(time.Second)) {
		t.Error("same reason and generation reported as a change (a second event)")
	}
	if !c.SetPending(ReasonDeferred, "no room", 3, now.Add(2*time.Second)) {
		t.Error("a new generation not reported as a change")
	}
	if !c.Pending.LastTransitionTime.Equal(&metav1.Time{Time: now}) {
		t.Errorf("transition time moved without a change of reason: %v", c.Pending.LastTransitionTime)
	}
	if !c.SetPending(ReasonInfeasible, "never", 3, now) || c.Pending.Reason != ReasonInfeasible {
		t.Errorf("infeasible: %+v", c.Pending)
	}
	c.ClearPending()
	if len(c.List()) != 0 {
		t.Errorf("conditions left: %+v", c.List())
	}
}

func TestInProgressCondition(t *testing.T) {
	now := time.Unix(1000, 0)
	var c Conditions
	if gen, changed := c.SetInProgress("", "", 2, now); gen != 2 || !changed {
		t.Fatalf("start: %d %v", gen, changed)
	}
	// An error keeps the generation the resize started at.
	if gen, changed := c.SetInProgress(v1.PodReasonError, "boom", 3, now); gen != 2 || !changed {
		t.Errorf("error: generation %d, changed %v", gen, changed)
	}
	if _, changed := c.SetInProgress("", "", 3, now); changed || c.InProgress.Reason != v1.PodReasonError {
		t.Errorf("a plain update cleared the error: %+v", c.InProgress)
	}
	if gen, cleared := c.ClearInProgress(); gen != 2 || !cleared {
		t.Errorf("clear: %d %v", gen, cleared)
	}
	if _, cleared := c.ClearInProgress(); cleared {
		t.Error("cleared twice")
	}
}

func TestBackfill(t *testing.T) {
	st := v1.PodStatus{Conditions: []v1.PodCondition{
		{Type: v1.PodReady, Status: v1.ConditionTrue},
		{Type: v1.PodResizePending, Status: v1.ConditionTrue, Reason: ReasonDeferred, ObservedGeneration: 4},
	}}
	c := Backfill(st)
	if c.Pending == nil || c.Pending.ObservedGeneration != 4 || c.InProgress != nil {
		t.Errorf("backfilled %+v", c)
	}
}

func TestEventMessage(t *testing.T) {
	sidecar := ctr("c0", lim(req("100m", ""), "200m", ""))
	pod := podWith(ctr("c1", lim(req("", "100"), "", "200")), ctr("c2", req("200m", "100")))
	pod.Spec.InitContainers = []v1.Container{sidecar}
	want := `Pod resize started: {"initContainers":[{"name":"c0","resources":{"limits":{"cpu":"200m"},"requests":{"cpu":"100m"}}}],"containers":[{"name":"c1","resources":{"limits":{"memory":"200"},"requests":{"memory":"100"}}},{"name":"c2","resources":{"requests":{"cpu":"200m","memory":"100"}}}],"generation":2}`
	if got := EventMessage("Pod resize started", pod, 2, ""); got != want {
		t.Errorf("message\n%s\nwant\n%s", got, want)
	}
	if got := EventMessage("Pod resize error", podWith(), 3, "boom"); got != `Pod resize error: {"generation":3,"error":"boom"}` {
		t.Errorf("error message %s", got)
	}
}
