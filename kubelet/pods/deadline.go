package pods

import (
	"context"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podstatus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// deadlineState is what a worker remembers of its pod's active deadline.
type deadlineState struct {
	// noted tells that the event was sent and the stop logged.
	noted bool
	// exceeded tells that the pod was stopped for its deadline: its status
	// is Failed with reason DeadlineExceeded.
	exceeded bool
}

// activeDeadline tells whether the pod has been active on the node for its
// spec.activeDeadlineSeconds or longer at now, counted from start, its
// status.startTime, as the kubelet counts it; and if not, how long it may
// still run. A pod without a deadline, or without a start time yet (its
// first status is not published), has none: (false, 0). The field is
// mutable (it may only go down), so the answer is asked at every sync.
func activeDeadline(pod *v1.Pod, start *metav1.Time, now time.Time) (exceeded bool, left time.Duration) {
	if pod.Spec.ActiveDeadlineSeconds == nil || start == nil || start.IsZero() {
		return false, 0
	}
	allowed := time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second
	active := now.Sub(start.Time)
	if active >= allowed {
		return true, 0
	}
	return false, allowed - active
}

// untilDeadline shortens next, the time until a running pod's next sync,
// so that the worker wakes when the pod's active deadline comes.
func untilDeadline(pod *v1.Pod, start *metav1.Time, now time.Time, next time.Duration) time.Duration {
	if _, left := activeDeadline(pod, start, now); left > 0 {
		return min(next, left)
	}
	return next
}

// stopForDeadline ends a pod past its active deadline as the kubelet does:
// an event, every container stopped within the pod's grace period, then
// phase Failed with reason DeadlineExceeded once nothing runs, and the
// volumes torn down. Its exited containers stay for their logs.
func (w *podWorker) stopForDeadline(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) error {
	grace := podruntime.SpecGracePeriod(pod)
	if !w.state.deadline.noted {
		klog.FromContext(ctx).Info("Pod exceeded its active deadline; stopping it",
			"activeDeadlineSeconds", *pod.Spec.ActiveDeadlineSeconds, "gracePeriod", grace)
		w.recorder.Event(pod, v1.EventTypeNormal, podstatus.ReasonDeadlineExceeded, podstatus.MessageDeadlineExceeded)
		w.state.deadline.noted = true
	}
	w.probes.StopAll()
	rt, err := w.stopForGood(ctx, pod, rt, grace)
	if err != nil {
		return err
	}
	w.state.deadline.exceeded = true
	if err := w.publish(ctx, pod, rt); err != nil {
		return err
	}
	w.host.markTerminated(w)
	return w.teardownOnce(ctx)
}

// pastDeadline tells whether the pod is to be stopped for its active
// deadline: past it now, or stopped for it already (the deadline cannot be
// lifted, and a pod stopped for it never starts again).
func (w *podWorker) pastDeadline(pod *v1.Pod) bool {
	if w.state.deadline.exceeded {
		return true
	}
	exceeded, _ := activeDeadline(pod, w.startTime(pod), w.clock.Now())
	return exceeded
}

// startTime is the pod's start time: its status's, or the one the worker
// published when the informer has not shown it yet (the kubelet asks its
// status manager first, too).
func (w *podWorker) startTime(pod *v1.Pod) *metav1.Time {
	if pod.Status.StartTime != nil {
		return pod.Status.StartTime
	}
	return w.state.startTime
}
