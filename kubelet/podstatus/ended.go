package podstatus

import (
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The reason and message of a pod stopped for its active deadline, in the
// kubelet's words: clients (Jobs, the conformance tests) look for them.
const (
	ReasonDeadlineExceeded  = "DeadlineExceeded"
	MessageDeadlineExceeded = "Pod was active on the node longer than the specified deadline"
	// reasonPodFailed is the reason of the readiness conditions of a pod
	// the kubelet ended.
	reasonPodFailed = "PodFailed"
)

// Ended is st for a pod the kubelet ended: phase Failed with reason
// and message, and, as the kubelet's status manager makes sure, not ready,
// whatever the containers' exit codes (a container that ends at SIGTERM
// exits with 0). Conditions that turn false now get now as their
// transition time.
func Ended(st v1.PodStatus, old []v1.PodCondition, reason, message string, now time.Time) v1.PodStatus {
	st.Phase = v1.PodFailed
	st.Reason = reason
	st.Message = message
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != v1.PodReady && c.Type != v1.ContainersReady {
			continue
		}
		c.Status, c.Reason, c.Message = v1.ConditionFalse, reasonPodFailed, ""
		c.LastTransitionTime = metav1.NewTime(now)
		if prev := FindCondition(old, c.Type); prev != nil && prev.Status == v1.ConditionFalse {
			c.LastTransitionTime = prev.LastTransitionTime
		}
	}
	return st
}
