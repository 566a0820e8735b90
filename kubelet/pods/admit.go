package pods

import (
	"context"
	"fmt"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podstatus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// Admission failures, in the kubelet's words.
const (
	reasonOutOfPods         = "OutOfpods"
	reasonNodeAffinity      = "NodeAffinity"
	reasonPodOSNotSupported = "PodOSNotSupported"
	// reasonUnexpectedAdmission is the kubelet's reason when a pod's
	// devices cannot be allocated.
	reasonUnexpectedAdmission = "UnexpectedAdmissionError"

	messageNodeAffinity   = "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
	messageOSNotSupported = "Failed to admit pod as the OS field doesn't match node OS"
	// rejectedPrefix starts the status message of a rejected pod; the event
	// carries the message without it.
	rejectedPrefix = "Pod was rejected: "
)

// rejection is why a pod was not admitted to the node.
type rejection struct {
	Reason  string
	Message string
}

// admit is the part of the kubelet's canAdmitPod that berth does: the pod's
// OS, the node's pod capacity and the kubernetes.io/os part of the pod's
// node selector and required node affinity (the scheduler checks the rest,
// and berth runs on Linux only). active counts the admitted pods that have
// not terminated; capacity 0 means no limit. Static pods are not held to
// the capacity: the kubelet would evict other pods to make room for them,
// berth lets them in.
func admit(pod *v1.Pod, active, capacity int, static bool) *rejection {
	if pod.Spec.OS != nil && pod.Spec.OS.Name != v1.Linux {
		return &rejection{Reason: reasonPodOSNotSupported, Message: messageOSNotSupported}
	}
	if !static && capacity > 0 && active >= capacity {
		return &rejection{
			Reason: reasonOutOfPods,
			Message: fmt.Sprintf("Node didn't have enough resource: %s, requested: 1, used: %d, capacity: %d",
				v1.ResourcePods, active, capacity),
		}
	}
	if !fitsLinux(pod) {
		return &rejection{Reason: reasonNodeAffinity, Message: messageNodeAffinity}
	}
	return nil
}

// fitsLinux tells whether the pod's node selector and required node
// affinity allow a node labelled kubernetes.io/os=linux, looking at nothing
// but that label.
func fitsLinux(pod *v1.Pod) bool {
	selector := map[string]string{}
	if os, ok := pod.Spec.NodeSelector[v1.LabelOSStable]; ok {
		selector[v1.LabelOSStable] = os
	}
	var affinity *v1.Affinity
	if terms := osTerms(pod.Spec.Affinity); terms != nil {
		affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{NodeSelectorTerms: terms},
		}}
	}
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1.LabelOSStable: string(v1.Linux)}}}
	// As under the kubelet, a selector that does not parse does not match.
	ok, err := nodeaffinity.NewRequiredNodeAffinity(selector, affinity).Match(node)
	return err == nil && ok
}

// osTerms returns the required node selector terms cut down to their
// kubernetes.io/os expressions; nil when some term says nothing about the
// OS, as that term may match a Linux node whatever the others say.
func osTerms(a *v1.Affinity) []v1.NodeSelectorTerm {
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	var out []v1.NodeSelectorTerm
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		var exprs []v1.NodeSelectorRequirement
		for _, e := range term.MatchExpressions {
			if e.Key == v1.LabelOSStable {
				exprs = append(exprs, e)
			}
		}
		if len(exprs) == 0 {
			return nil
		}
		out = append(out, v1.NodeSelectorTerm{MatchExpressions: exprs})
	}
	return out
}

// admitLocked decides, once and for good, whether a pod new to the manager
// may run. Pods that will not run anyway (finished, being deleted) are let
// in. m.mu must be held.
func (m *Manager) admitLocked(pod *v1.Pod, static bool) *rejection {
	if pod.DeletionTimestamp != nil || podstatus.IsTerminalPhase(pod.Status.Phase) {
		return nil
	}
	if m.ShuttingDown() {
		return &rejection{Reason: "NodeShutdown", Message: "Pod was rejected as the node is shutting down."}
	}
	if r := admit(pod, m.activePodsLocked(), int(m.cfg.Kubelet.MaxPods), static); r != nil {
		return r
	}
	return m.admitDevicesLocked(pod)
}

// admitDevicesLocked allocates the pod's devices: the pod is rejected when
// some container cannot have its devices. It runs after berth's other
// checks, so that a pod rejected for them takes no devices; the kubelet
// allocates before its predicate checks, which only changes the reason a
// pod failing both is given. The device plugins are called with m.mu held,
// as admissions are decided one at a time; each call has a time limit.
// m.mu must be held.
func (m *Manager) admitDevicesLocked(pod *v1.Pod) *rejection {
	if m.cfg.Devices == nil {
		return nil
	}
	ctx := m.runContext()
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithValues("pod", klog.KObj(pod)))
	if err := m.cfg.Devices.Admit(ctx, pod); err != nil {
		return &rejection{
			Reason:  reasonUnexpectedAdmission,
			Message: fmt.Sprintf("Allocate failed due to %v, which is unexpected", err),
		}
	}
	return nil
}

// retainDevicesLocked frees the devices of the pods that are not active,
// once every source of pods has given its first view (before, a pod that
// still runs may not be known yet). m.mu must be held.
func (m *Manager) retainDevicesLocked(ctx context.Context) {
	if m.cfg.Devices == nil || !m.sourcesReadyLocked() {
		return
	}
	active := map[types.UID]bool{}
	for uid, w := range m.workers {
		if w.pod != nil && w.rejection == nil && !w.terminated && !podstatus.IsTerminalPhase(w.pod.Status.Phase) {
			active[uid] = true
		}
	}
	m.cfg.Devices.Retain(ctx, active)
}

// activePodsLocked counts the admitted pods that have not terminated: a
// pod being stopped holds its place until it has stopped. m.mu must be held.
func (m *Manager) activePodsLocked() int {
	n := 0
	for _, w := range m.workers {
		if w.pod != nil && w.rejection == nil && !w.terminated && !podstatus.IsTerminalPhase(w.pod.Status.Phase) {
			n++
		}
	}
	return n
}

// markTerminated records that nothing of the worker's pod runs any more.
func (m *Manager) markTerminated(w *podWorker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.terminated = true
	if m.cfg.Devices != nil {
		m.cfg.Devices.Release(m.runContext(), w.uid)
	}
	// Its resources are free: resizes waiting for room may fit now.
	m.retryDeferredResizesLocked()
}

// reject publishes why the pod may not run, as the kubelet does: a Warning
// event, and phase Failed with the reason. A rejected pod never starts;
// whatever of it the runtime holds (from before a restart) is stopped.
func (w *podWorker) reject(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState, r rejection) error {
	if !w.state.rejectNoted {
		klog.FromContext(ctx).Info("Pod rejected", "reason", r.Reason, "message", r.Message)
		w.recorder.Event(pod, v1.EventTypeWarning, r.Reason, r.Message)
		w.state.rejectNoted = true
	}
	st := *pod.Status.DeepCopy()
	st.Phase = v1.PodFailed
	st.Reason = r.Reason
	st.Message = rejectedPrefix + r.Message
	st.QOSClass = podruntime.QOSClass(pod)
	if st.StartTime == nil {
		now := metav1.NewTime(w.clock.Now())
		st.StartTime = &now
	}
	if err := w.sendStatus(ctx, pod, st); err != nil {
		return err
	}
	return w.stopFinished(ctx, pod, rt)
}

// runContext is the context Run was given, or the background before Run.
// m.mu must be held.
func (m *Manager) runContext() context.Context {
	if m.ctx == nil {
		return context.Background()
	}
	return m.ctx
}
