package podstatus

import (
	"testing"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podruntime/podruntimetest"
	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEndedStatus(t *testing.T) {
	then := metav1.NewTime(time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC))
	now := time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
	st := v1.PodStatus{
		Phase: v1.PodSucceeded,
		Conditions: []v1.PodCondition{
			{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: then},
			{Type: v1.ContainersReady, Status: v1.ConditionTrue, LastTransitionTime: then},
			{Type: v1.PodReady, Status: v1.ConditionFalse, Reason: ReasonPodCompleted, LastTransitionTime: then},
		},
	}
	old := []v1.PodCondition{
		{Type: v1.ContainersReady, Status: v1.ConditionTrue, LastTransitionTime: then},
		{Type: v1.PodReady, Status: v1.ConditionFalse, LastTransitionTime: then},
	}
	got := Ended(st, old, ReasonDeadlineExceeded, MessageDeadlineExceeded, now)
	want := v1.PodStatus{
		Phase:   v1.PodFailed,
		Reason:  ReasonDeadlineExceeded,
		Message: MessageDeadlineExceeded,
		Conditions: []v1.PodCondition{
			{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: then},
			{Type: v1.ContainersReady, Status: v1.ConditionFalse, Reason: reasonPodFailed, LastTransitionTime: metav1.NewTime(now)},
			{Type: v1.PodReady, Status: v1.ConditionFalse, Reason: reasonPodFailed, LastTransitionTime: then},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endedStatus (-want +got):\n%s", diff)
	}
}

// TestStartTimeKept checks that a status built from a pod the informer
// shows without its start time yet keeps the one published before: the
// active deadline counts from it.
func TestStartTimeKept(t *testing.T) {
	pod := podruntimetest.Scheduled(v1.RestartPolicyAlways, nil, podruntimetest.Spec("a"))
	published := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	now := published.Add(10 * time.Minute)
	st := Build(Input{Pod: pod, RT: &podruntime.PodState{}, Now: now, StartTime: &published})
	if st.StartTime == nil || !st.StartTime.Equal(&published) {
		t.Errorf("start time %v, want the published %v", st.StartTime, published)
	}
	st = Build(Input{Pod: pod, RT: &podruntime.PodState{}, Now: now})
	if st.StartTime == nil || !st.StartTime.Time.Equal(now) {
		t.Errorf("first start time %v, want now %v", st.StartTime, now)
	}
}
