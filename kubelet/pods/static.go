package pods

import (
	"context"
	"fmt"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podstatus"
	"github.com/berthnode/berth/kubelet/staticpods"
)

// staticState is what the manager knows of the mirror pods of static pods.
// It is guarded by Manager.mu.
type staticState struct {
	// mirrors are the mirror pods bound to this node, by namespace/name, as
	// the pod informer shows them.
	mirrors map[string]*v1.Pod
	// swept is when a mirror pod whose static pod is gone was last
	// deleted, by UID, so that the informer's lag does not cost a delete
	// per relist.
	swept map[types.UID]time.Time
}

// staticWorkerState is what the worker of a static pod remembers.
type staticWorkerState struct {
	// mirror is the pod's mirror pod, nil while there is none of this
	// version of the static pod.
	mirror *v1.Pod
	// status is the status last computed: the API has it only while the
	// mirror pod exists.
	status *v1.PodStatus
	// stopped tells that the pod, removed from the source, has stopped and
	// its mirror pod is deleted.
	stopped bool
}

// isMirrorPod tells whether the pod is the API's copy of a static pod.
func isMirrorPod(pod *v1.Pod) bool {
	_, ok := pod.Annotations[v1.MirrorPodAnnotationKey]
	return ok
}

// podKey is the pod's namespace/name, the key of a static pod and its
// mirror pod.
func podKey(pod *v1.Pod) string { return pod.Namespace + "/" + pod.Name }

// staticHash is the hash a static pod's mirror pod carries.
func staticHash(pod *v1.Pod) string {
	if h, ok := pod.Annotations[staticpods.AnnotationHash]; ok {
		return h
	}
	return string(pod.UID)
}

// isMirrorOf tells whether mirror shows this version of the static pod and
// is not being deleted.
func isMirrorOf(mirror, pod *v1.Pod) bool {
	return mirror != nil && mirror.DeletionTimestamp == nil &&
		mirror.Annotations[v1.MirrorPodAnnotationKey] == staticHash(pod)
}

// mirrorPodOf is the mirror pod to create for a static pod: a copy the
// node owns (NodeRestriction lets a node create no other pods), marked
// with the static pod's hash.
func mirrorPodOf(pod *v1.Pod, node *v1.Node) *v1.Pod {
	mirror := pod.DeepCopy()
	mirror.UID, mirror.ResourceVersion = "", ""
	mirror.DeletionTimestamp, mirror.DeletionGracePeriodSeconds = nil, nil
	mirror.Status = v1.PodStatus{}
	mirror.Annotations[v1.MirrorPodAnnotationKey] = staticHash(pod)
	mirror.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "v1",
		Kind:       "Node",
		Name:       node.Name,
		UID:        node.UID,
		Controller: ptr.To(true),
	}}
	return mirror
}

// stopping returns the static pod marked for stopping within its grace
// period, the way a pod deleted in the API is marked.
func stopping(pod *v1.Pod, now time.Time) *v1.Pod {
	out := *pod
	t := metav1.NewTime(now)
	out.DeletionTimestamp = &t
	out.DeletionGracePeriodSeconds = ptr.To(podruntime.SpecGracePeriod(pod))
	return &out
}

// setStaticPods takes the complete set of static pods from the source:
// new ones are admitted and started, those gone are stopped (a changed
// manifest is both).
func (m *Manager) setStaticPods(pods []*v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	logger := klog.FromContext(m.ctx)
	want := make(map[types.UID]*v1.Pod, len(pods))
	for _, p := range pods {
		want[p.UID] = p
	}
	for uid, w := range m.workers {
		if !w.static || w.pod == nil {
			continue
		}
		if p, ok := want[uid]; ok {
			if w.pod.DeletionTimestamp != nil {
				// Back before its worker went.
				w.pod, w.terminated = p, false
				w.wakeUp()
			}
			continue
		}
		if w.pod.DeletionTimestamp == nil {
			logger.Info("Static pod removed or changed; stopping it", "pod", klog.KObj(w.pod), "podUID", uid)
			w.pod = stopping(w.pod, m.cfg.Clock.Now())
			w.wakeUp()
		}
	}
	for _, p := range pods {
		if w, ok := m.workers[p.UID]; ok {
			if !w.static {
				logger.Error(nil, "Static pod has the UID of a pod from the API server; ignoring it", "pod", klog.KObj(p), "podUID", p.UID)
			}
			continue
		}
		logger.Info("Static pod added", "pod", klog.KObj(p), "podUID", p.UID)
		m.addPodLocked(p, true)
	}
	m.sources.staticSynced = true
}

// mirrorChangedLocked records a mirror pod from the informer and wakes its
// static pod. m.mu must be held.
func (m *Manager) mirrorChangedLocked(pod *v1.Pod) {
	m.static.mirrors[podKey(pod)] = pod
	m.wakeStaticLocked(podKey(pod))
}

// mirrorDeletedLocked forgets a mirror pod gone from the API and wakes its
// static pod, which makes a new one. m.mu must be held.
func (m *Manager) mirrorDeletedLocked(pod *v1.Pod) {
	key := podKey(pod)
	if cur, ok := m.static.mirrors[key]; ok && cur.UID == pod.UID {
		delete(m.static.mirrors, key)
	}
	delete(m.static.swept, pod.UID)
	m.wakeStaticLocked(key)
}

// wakeStaticLocked wakes the workers of the static pods named key.
func (m *Manager) wakeStaticLocked(key string) {
	for _, w := range m.workers {
		if w.static && w.pod != nil && podKey(w.pod) == key {
			w.wakeUp()
		}
	}
}

// hasStaticLocked tells whether a static pod named key has a worker.
func (m *Manager) hasStaticLocked(key string) bool {
	for _, w := range m.workers {
		if w.static && w.pod != nil && podKey(w.pod) == key {
			return true
		}
	}
	return false
}

// predecessorLocked tells whether another version of w's static pod is
// still stopping: the new one waits for it, as under the kubelet, since
// both would want the same host ports and files.
func (m *Manager) predecessorLocked(w *podWorker) bool {
	if !w.static || w.pod == nil || w.pod.DeletionTimestamp != nil {
		return false
	}
	key := podKey(w.pod)
	for _, o := range m.workers {
		if o != w && o.static && o.pod != nil && podKey(o.pod) == key {
			return true
		}
	}
	return false
}

// sweepMirrors deletes the mirror pods whose static pod is gone (its
// manifest was removed while berth was down, or it never was this node's).
func (m *Manager) sweepMirrors(ctx context.Context) {
	m.mu.Lock()
	var orphans []*v1.Pod
	if m.sourcesReadyLocked() {
		now := m.cfg.Clock.Now()
		for key, mirror := range m.static.mirrors {
			if m.hasStaticLocked(key) {
				continue
			}
			if t, ok := m.static.swept[mirror.UID]; ok && now.Sub(t) < resendAfter {
				continue
			}
			m.static.swept[mirror.UID] = now
			orphans = append(orphans, mirror)
		}
	}
	m.mu.Unlock()
	logger := klog.FromContext(ctx)
	for _, mirror := range orphans {
		logger.Info("Deleting mirror pod without static pod", "pod", klog.KObj(mirror))
		if err := m.deleteMirror(ctx, mirror); err != nil {
			logger.Error(err, "Cannot delete mirror pod without static pod", "pod", klog.KObj(mirror))
		}
	}
}

// deleteMirror deletes a mirror pod at once; one already gone, or
// replaced meanwhile, is fine.
func (m *Manager) deleteMirror(ctx context.Context, mirror *v1.Pod) error {
	err := m.cfg.Client.CoreV1().Pods(mirror.Namespace).Delete(ctx, mirror.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &mirror.UID},
	})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("delete mirror pod %s: %w", podKey(mirror), err)
}

// prepareStatic readies the sync of a static pod: it finds or makes the
// pod's mirror pod and returns the pod with its last status. It tells
// whether the pod must wait for its previous version to stop first.
func (w *podWorker) prepareStatic(ctx context.Context, pod *v1.Pod, view podView) (*v1.Pod, bool) {
	w.state.static.mirror = nil
	if isMirrorOf(view.mirror, pod) {
		w.state.static.mirror = view.mirror
	}
	pod = w.staticStatusPod(pod)
	if view.waiting {
		klog.FromContext(ctx).V(2).Info("Static pod waits for its previous version to stop")
		return pod, true
	}
	if pod.DeletionTimestamp == nil {
		w.state.static.stopped = false
		w.syncMirror(ctx, pod, view.mirror)
	}
	return pod, false
}

// staticStatusPod returns the static pod with the status it has last had:
// the one last computed, or after a restart its mirror pod's. The kubelet
// reports static pods as scheduled.
func (w *podWorker) staticStatusPod(pod *v1.Pod) *v1.Pod {
	out := *pod
	switch {
	case w.state.static.status != nil:
		out.Status = *w.state.static.status
	case w.state.static.mirror != nil && w.state.static.mirror.Status.StartTime != nil:
		out.Status = w.state.static.mirror.Status
	}
	if podstatus.FindCondition(out.Status.Conditions, v1.PodScheduled) == nil {
		out.Status.Conditions = append(slices.Clone(out.Status.Conditions), v1.PodCondition{
			Type: v1.PodScheduled, Status: v1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(w.clock.Now()),
		})
	}
	return &out
}

// syncMirror makes the API show this version of the static pod: it
// replaces a mirror pod of another version or one being deleted, and
// creates one where there is none. Failures are logged and retried at the
// next sync; the static pod runs regardless.
func (w *podWorker) syncMirror(ctx context.Context, pod, found *v1.Pod) {
	logger := klog.FromContext(ctx)
	if w.state.static.mirror != nil {
		return
	}
	if found != nil {
		logger.Info("Replacing outdated mirror pod", "mirrorUID", found.UID)
		if err := w.host.deleteMirror(ctx, found); err != nil {
			logger.Error(err, "Cannot delete outdated mirror pod")
			return
		}
	}
	node, err := w.client.CoreV1().Nodes().Get(ctx, w.nodeName, metav1.GetOptions{})
	if err != nil {
		logger.Error(err, "Cannot create mirror pod: the node, its owner, is not readable")
		return
	}
	created, err := w.client.CoreV1().Pods(pod.Namespace).Create(ctx, mirrorPodOf(pod, node), metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		// The informer has not shown it yet, or a pod that is no mirror
		// holds the name.
		logger.V(2).Info("Mirror pod exists already")
	case err != nil:
		logger.Error(err, "Cannot create mirror pod")
	default:
		logger.V(2).Info("Created mirror pod", "mirrorUID", created.UID)
		w.state.static.mirror = created
	}
}
