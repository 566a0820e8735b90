package pods

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podstatus"
	"github.com/berthnode/berth/kubelet/resize"
)

// resizeState is what a worker keeps of its pod's in-place resizes.
type resizeState struct {
	// rec is the pod's allocated and actuated resources; nil until loaded.
	rec *resize.Record
	// conds are the pod's PodResizePending and PodResizeInProgress.
	conds resize.Conditions
}

// allocate loads the pod's record on first use and admits a resize of its
// spec, or defers it, as the kubelet's allocation manager does. It returns
// the pod with its allocated resources, which is what runs and what the
// status shows.
func (w *podWorker) allocate(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) *v1.Pod {
	logger := klog.FromContext(ctx)
	rs := &w.state.resize
	store := w.resizes
	running := runningResizable(pod, rt)
	if rs.rec == nil {
		rec, err := store.Load(pod.UID)
		if err != nil {
			// A broken record must not hold the pod: start over from
			// its spec, which is what ran before any resize.
			logger.Error(err, "Cannot read the pod's allocated resources; taking its spec")
		}
		if rec == nil {
			rec = resize.NewRecord(pod)
			w.saveRecord(ctx, rec)
		}
		rs.rec = rec
		rs.conds = resize.Backfill(pod.Status)
	}
	if rs.rec.Prune(running) {
		w.saveRecord(ctx, rs.rec)
	}
	allocated, differs := resize.Apply(pod, rs.rec.Allocated)
	if differs {
		// Admission may change the allocation: apply what it left.
		w.admitResize(ctx, pod, running)
		allocated, _ = resize.Apply(pod, rs.rec.Allocated)
	} else {
		rs.conds.ClearPending()
		w.host.setResizeDeferred(w, false)
	}
	w.host.setAllocatedRequests(w, resize.Requests(allocated))
	return allocated
}

// admitResize allocates the spec's resources when they fit the node, or
// marks the resize pending.
func (w *podWorker) admitResize(ctx context.Context, pod *v1.Pod, running map[string]string) {
	now := w.clock.Now()
	w.host.resizeRoom(ctx, w, func(used, allocatable v1.ResourceList) {
		w.admitResizeWithin(ctx, pod, running, now, used, allocatable)
	})
}

// admitResizeWithin is admitResize once the room on the node is known.
func (w *podWorker) admitResizeWithin(ctx context.Context, pod *v1.Pod, running map[string]string, now time.Time, used, allocatable v1.ResourceList) {
	rs := &w.state.resize
	verdict := resize.Fit(pod, used, allocatable)
	if verdict.Reason != "" {
		if rs.conds.SetPending(verdict.Reason, verdict.Message, pod.Generation, now) {
			// The event names the admission's own reason (OutOfcpu), as
			// the kubelet's does; the condition says Deferred.
			event := resize.EventDeferred
			if verdict.Reason == resize.ReasonInfeasible {
				event = resize.EventInfeasible
			}
			klog.FromContext(ctx).Info("Pod resize pending", "reason", verdict.Reason, "message", verdict.Message)
			w.recorder.Event(pod, v1.EventTypeWarning, event,
				resize.EventMessage("Pod resize "+verdict.Reason, pod, pod.Generation, verdict.Message))
		}
		w.host.setResizeDeferred(w, rs.conds.Pending.Reason == resize.ReasonDeferred)
		return
	}
	old := resize.Requests(mustApply(pod, rs.rec.Allocated))
	rs.rec.Allocate(resize.SpecAllocation(pod), running)
	w.saveRecord(ctx, rs.rec)
	// Counted as allocated before the next admission looks.
	w.host.setAllocatedRequests(w, resize.Requests(pod))
	rs.conds.ClearPending()
	rs.conds.ClearInProgress()
	rs.conds.SetInProgress("", "", pod.Generation, now)
	w.host.setResizeDeferred(w, false)
	klog.FromContext(ctx).Info("Pod resize allocated", "generation", pod.Generation)
	w.recorder.Event(pod, v1.EventTypeNormal, resize.EventStarted,
		resize.EventMessage("Pod resize started", pod, pod.Generation, ""))
	if shrank(old, resize.Requests(pod)) {
		// Room was given back: deferred resizes of others may fit now.
		w.host.retryDeferredResizes()
	}
}

func mustApply(pod *v1.Pod, alloc map[string]v1.ResourceRequirements) *v1.Pod {
	out, _ := resize.Apply(pod, alloc)
	return out
}

// shrank tells whether some resource of now is less than before.
func shrank(before, now v1.ResourceList) bool {
	for name, q := range before {
		if n := now[name]; n.Cmp(q) < 0 {
			return true
		}
	}
	return false
}

func (w *podWorker) saveRecord(ctx context.Context, rec *resize.Record) {
	if err := w.resizes.Save(w.uid, rec); err != nil {
		// The next change writes it again; meanwhile memory holds it.
		klog.FromContext(ctx).Error(err, "Cannot save the pod's allocated resources")
	}
}

// runningResizable maps the pod's resizable containers that run in its
// newest sandbox to their IDs.
func runningResizable(pod *v1.Pod, rt *podruntime.PodState) map[string]string {
	out := map[string]string{}
	add := func(c *v1.Container, init bool) {
		if cur := rt.Current(c.Name); cur != nil && cur.Running() && resize.Resizable(c, init) {
			out[c.Name] = cur.ID
		}
	}
	for i := range pod.Spec.InitContainers {
		add(&pod.Spec.InitContainers[i], true)
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i], false)
	}
	return out
}

// resizeRoom runs admit, one resize admission at a time (so that two pods
// cannot both take the same free room), with what the node's other active
// pods were allocated and the node's allocatable CPU and memory (its
// capacity when the Node cannot be read).
func (m *Manager) resizeRoom(ctx context.Context, self *podWorker, admit func(used, allocatable v1.ResourceList)) {
	m.resizing.Lock()
	defer m.resizing.Unlock()
	admit(m.resizeUse(ctx, self))
}

// resizeUse returns what the node's other active pods were allocated, and
// the node's allocatable CPU and memory.
func (m *Manager) resizeUse(ctx context.Context, self *podWorker) (used, allocatable v1.ResourceList) {
	allocatable = v1.ResourceList{
		v1.ResourceCPU:    *resource.NewMilliQuantity(m.nodeCPU, resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(m.nodeMem, resource.BinarySI),
	}
	if node, err := m.cfg.Client.CoreV1().Nodes().Get(ctx, m.cfg.NodeName, metav1.GetOptions{}); err != nil {
		klog.FromContext(ctx).Error(err, "Cannot read the node's allocatable resources; using its capacity")
	} else if len(node.Status.Allocatable) > 0 {
		allocatable = node.Status.Allocatable
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	used = v1.ResourceList{}
	for _, w := range m.workers {
		if w == self || w.pod == nil || w.rejection != nil || w.terminated || podstatus.IsTerminalPhase(w.pod.Status.Phase) {
			continue
		}
		held := w.allocatedRequests
		if held == nil {
			held = resize.Requests(w.pod)
		}
		used = resize.Add(used, held)
	}
	return used, allocatable
}

func (m *Manager) setAllocatedRequests(w *podWorker, reqs v1.ResourceList) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.allocatedRequests = reqs
}

func (m *Manager) setResizeDeferred(w *podWorker, deferred bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.resizeDeferred = deferred
}

// retryDeferredResizes wakes the workers of pods whose resize waits for
// room on the node.
func (m *Manager) retryDeferredResizes() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.retryDeferredResizesLocked()
}

// retryDeferredResizesLocked is retryDeferredResizes with m.mu held.
func (m *Manager) retryDeferredResizesLocked() {
	for _, w := range m.workers {
		if w.resizeDeferred {
			w.wakeUp()
		}
	}
}

// actuateResize gives the pod's running containers their allocated
// resources: it restarts those whose resizePolicy asks for it and updates
// the others and the pod cgroup in the kubelet's order. It tells whether
// it changed what runs; an error is shown on PodResizeInProgress.
func (w *podWorker) actuateResize(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState, mounts map[string]string) (bool, error) {
	rs := &w.state.resize
	plan := resize.PlanFor(pod, rs.rec, runningResizable(pod, rt))
	if plan.Empty() {
		return false, nil
	}
	err := w.checkMemoryDecrease(ctx, plan.Memory)
	if err == nil {
		err = w.applyPlan(ctx, pod, rt, plan, mounts)
	}
	if err != nil {
		gen, changed := rs.conds.SetInProgress(v1.PodReasonError, err.Error(), pod.Generation, w.clock.Now())
		if changed {
			w.recorder.Event(pod, v1.EventTypeWarning, resize.EventError,
				resize.EventMessage("Pod resize error", pod, gen, err.Error()))
		}
	}
	return true, err
}

// applyPlan carries a resize plan out.
func (w *podWorker) applyPlan(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState, plan resize.Plan, mounts map[string]string) error {
	var restarted []*podruntime.ContainerState
	for _, c := range rt.RunningContainers() {
		if id, ok := plan.Restart[c.Name]; ok && id == c.ID {
			restarted = append(restarted, c)
		}
	}
	for _, c := range restarted {
		if err := w.runtime.StopContainer(ctx, pod, c, podruntime.SpecGracePeriod(pod), fmt.Sprintf("Container %s resize requires restart", c.Name)); err != nil {
			return err
		}
	}
	cg, cur, want, err := w.podCgroup(pod)
	if err != nil {
		return err
	}
	for _, op := range resize.Sequence(plan, cur, want, len(restarted) > 0) {
		if op.Kind != resize.OpContainer {
			if err := cg.Apply(op.Kind, *want); err != nil {
				return fmt.Errorf("set pod cgroup: %w", err)
			}
			continue
		}
		if err := w.updateContainer(ctx, pod, op.Step); err != nil {
			return err
		}
		w.state.resize.rec.SetActuated(op.Step.Name, op.Step.ContainerID, op.Step.To)
		w.saveRecord(ctx, w.state.resize.rec)
	}
	if len(restarted) == 0 {
		return nil
	}
	return w.restartResized(ctx, pod, restarted, mounts)
}

// restartResized starts the containers stopped for a resize again, with
// their allocated resources, without the crash back-off.
func (w *podWorker) restartResized(ctx context.Context, pod *v1.Pod, stopped []*podruntime.ContainerState, mounts map[string]string) error {
	rt, err := podruntime.Observe(ctx, w.cri, w.uid)
	if err != nil {
		return err
	}
	sb, err := w.runtime.Sandbox(ctx, pod, rt, podruntime.Actions{})
	if err != nil {
		return err
	}
	sb.Mounts = mounts
	var errs []error
	for _, c := range stopped {
		if spec := podruntime.ContainerSpec(pod, c.Name); spec != nil {
			errs = append(errs, w.runtime.StartContainer(ctx, pod, sb, spec, rt))
		}
	}
	return errors.Join(errs...)
}

// updateContainer sets one container's cgroups through CRI.
func (w *podWorker) updateContainer(ctx context.Context, pod *v1.Pod, s resize.Step) error {
	spec := podruntime.ContainerSpec(pod, s.Name)
	if spec == nil {
		return fmt.Errorf("container %q is not in the pod spec", s.Name)
	}
	c := spec.DeepCopy()
	c.Resources = s.To
	res := podruntime.ContainerResources(pod, c, w.resources)
	if err := w.cri.UpdateContainerResources(ctx, s.ContainerID, &runtimeapi.ContainerResources{Linux: res}); err != nil {
		return fmt.Errorf("update resources of container %q: %w", s.Name, err)
	}
	klog.FromContext(ctx).V(2).Info("Updated container resources", "container", s.Name, "containerID", s.ContainerID,
		"cpuShares", res.CpuShares, "cpuQuota", res.CpuQuota, "memoryLimit", res.MemoryLimitInBytes)
	return nil
}

// checkMemoryDecrease refuses to set a memory limit at or below what the
// container uses now, as the kubelet does: the kernel would have to reclaim
// or kill at once.
func (w *podWorker) checkMemoryDecrease(ctx context.Context, steps []resize.Step) error {
	var errs []error
	for _, s := range steps {
		from, to := resize.AmountsOf(s.From).MemoryLimit, resize.AmountsOf(s.To).MemoryLimit
		if to == 0 || (from != 0 && to >= from) {
			continue
		}
		stats, err := w.cri.ContainerStats(ctx, s.ContainerID)
		if err != nil || stats.GetMemory().GetUsageBytes() == nil {
			errs = append(errs, fmt.Errorf("missing container %q memory usage", s.Name))
			continue
		}
		if usage := stats.GetMemory().GetUsageBytes().GetValue(); usage >= uint64(to) {
			errs = append(errs, fmt.Errorf("attempting to set container %q memory limit (%d) below current usage (%d)", s.Name, to, usage))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("cannot decrease memory limits: %w", errors.Join(errs...))
}

// podCgroup returns the pod cgroup's files, its settings now and those the
// allocated resources ask for; nil settings when berth does not manage the
// pod cgroup (no per-QoS cgroups, the systemd driver, or a runtime that has
// not made it).
func (w *podWorker) podCgroup(pod *v1.Pod) (resize.CgroupFS, *resize.PodCgroup, *resize.PodCgroup, error) {
	f := w.files
	if !f.cgroupsPerQOS || f.cgroupDriver == "systemd" {
		return resize.CgroupFS{}, nil, nil, nil
	}
	cg := resize.CgroupFS{Mount: podruntime.CgroupFS, Dir: podruntime.CgroupParent(f.cgroupRoot, f.cgroupDriver, true, pod), V2: resize.IsCgroupV2(podruntime.CgroupFS)}
	if !cg.Exists() {
		return cg, nil, nil, nil
	}
	cur, err := cg.Read()
	if err != nil {
		return cg, nil, nil, fmt.Errorf("read pod cgroup: %w", err)
	}
	p := w.resources
	period := p.QuotaPeriod
	if period <= 0 {
		period = 100 * time.Millisecond
	}
	want := resize.PodCgroupFor(pod, p.CFSQuota, period.Microseconds())
	return cg, &cur, &want, nil
}

// noteResizeProgress sets PodResizeInProgress while a running container
// does not have its allocated resources, and clears it with a
// ResizeCompleted event once all have.
func (w *podWorker) noteResizeProgress(pod *v1.Pod, rt *podruntime.PodState) {
	rs := &w.state.resize
	if rs.rec == nil {
		return
	}
	if resize.InProgress(pod, rs.rec, runningResizable(pod, rt)) {
		rs.conds.SetInProgress("", "", pod.Generation, w.clock.Now())
		return
	}
	if gen, cleared := rs.conds.ClearInProgress(); cleared {
		w.recorder.Event(pod, v1.EventTypeNormal, resize.EventCompleted,
			resize.EventMessage("Pod resize completed", pod, gen, ""))
	}
}

// actualResources returns, by container ID, the resources of running
// containers that differ from their allocated ones, for the status.
func (w *podWorker) actualResources(pod *v1.Pod, rt *podruntime.PodState) map[string]v1.ResourceRequirements {
	rec := w.state.resize.rec
	if rec == nil {
		return nil
	}
	out := map[string]v1.ResourceRequirements{}
	for name, id := range runningResizable(pod, rt) {
		if a, ok := rec.Actuated[name]; ok && a.ContainerID == id {
			out[id] = a.Resources
		}
	}
	return out
}
