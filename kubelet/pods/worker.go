package pods

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podstatus"
	"github.com/berthnode/berth/kubelet/prober"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// Retry delays of a pod whose sync failed (a runtime or API error, a volume
// that is not there yet).
const (
	minRetry = time.Second
	maxRetry = 30 * time.Second
)

// podWorker serializes the work on one pod. The node's dependencies, host,
// uid, wake and static are fixed when it is made; the fields from pod to
// terminated are guarded by Manager.mu; state belongs to whoever holds
// the turn: the worker's goroutine during a sync, or a node shutdown's stop.
type podWorker struct {
	*workerDeps
	// host is the manager, for what only the one that sees every pod
	// knows.
	host workerHost
	uid  types.UID
	wake chan struct{}
	// turn is held (one token) by the sync running or by a node
	// shutdown's stop (stopForShutdown) while it reads and writes state.
	turn chan struct{}
	// static tells that the pod comes from the static pod source; the API
	// shows it as a mirror pod.
	static bool

	// pod is the newest version from its source; nil for a pod known only
	// to the runtime.
	pod *v1.Pod
	// removed tells that the pod is gone from the API.
	removed bool
	// nextSync is when to sync again without news (zero: not scheduled).
	nextSync time.Time
	// rejection is why the pod was not admitted; nil when it was. It is
	// decided once, when the pod is new.
	rejection *rejection
	// terminated tells that nothing of the pod runs any more: it no longer
	// counts against the node's pod capacity.
	terminated bool
	// allocatedRequests is the CPU and memory allocated to the pod (nil:
	// not known yet, its spec's count); resizeDeferred tells that its
	// resize waits for room (resize.go).
	allocatedRequests v1.ResourceList
	resizeDeferred    bool

	state *workerState
	// runtime is the pod's side of the runtime: back-offs, waiting
	// reasons and the work on sandboxes and containers.
	runtime *podruntime.Pod
	// probes are the pod's probe workers and their results.
	probes *prober.Pod
	// sending serializes status patches (the worker's and the one sent
	// in the background at the start of a sync); pending counts those in
	// the background.
	sending sync.Mutex
	pending sync.WaitGroup
	// supersede, closed by the worker's next publish, cancels a background
	// one that has not been sent yet. The worker's goroutine owns it.
	supersede chan struct{}
	// hurry, closed by publishNow, makes the background publish send
	// without waiting. The worker's goroutine owns it.
	hurry chan struct{}
	// sent is the status last patched (see sentStatus).
	sent sentStatus
	// seen is what the worker saw of its pod's runtime state (see
	// runtimeSeen).
	seen runtimeSeen
}

// workerState is what a worker remembers between syncs of its pod.
type workerState struct {
	// messages caches termination messages of exited containers by ID.
	messages map[string]string
	// lastSent is the last status patch sent and lastSentAt when, to skip
	// sending it again while the informer lags behind.
	lastSent   []byte
	lastSentAt time.Time
	// retry is the delay before the next try after a failed sync.
	retry time.Duration
	// lastPod is the last version of the pod seen, for its grace period
	// once the pod is gone from the API.
	lastPod *v1.Pod
	// tornDown tells that the volumes of the finished pod are gone.
	tornDown bool
	// finished tells that the pod ran to completion under this worker.
	finished bool
	// rejectNoted tells that the rejection was logged and its event sent.
	rejectNoted bool
	// static is what the worker of a static pod remembers.
	static staticWorkerState
	// seen is when the worker first saw the pod; started tells that the
	// pod has been seen running since (for the pod start metric).
	seen    time.Time
	started bool
	// startTime is the pod's start time as published, kept while the
	// informer has not shown it yet.
	startTime *metav1.Time
	// trace follows the pod's first start; nil once logged.
	trace *startTrace
	// deadline is what the worker knows of the pod's active deadline.
	deadline deadlineState
	// resize is the pod's allocated resources and resize conditions.
	resize resizeState
	// synced tells that the worker has begun a sync.
	synced bool
}

func newPodWorker(m *Manager, uid types.UID, static bool) *podWorker {
	w := &podWorker{
		workerDeps: m.deps,
		host:       m,
		uid:        uid,
		static:     static,
		wake:       make(chan struct{}, 1),
		turn:       make(chan struct{}, 1),
		state: &workerState{
			messages: map[string]string{},
			seen:     m.deps.clock.Now(),
		},
	}
	w.probes = prober.NewPod(w.probing, w.wakeUp)
	w.runtime = w.runner.NewPod()
	w.runtime.Mark = func(step string) { w.state.trace.mark(step) }
	w.state.trace = &startTrace{clock: w.clock, seen: w.state.seen}
	return w
}

// wakeUp asks the worker to sync soon; it never blocks.
func (w *podWorker) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// loop syncs the pod whenever woken, until the pod is gone for good or ctx
// is done.
func (w *podWorker) loop(ctx context.Context) {
	logger := klog.FromContext(ctx).WithValues("podUID", w.uid)
	ctx = klog.NewContext(ctx, logger)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		if w.takeTurn(ctx) != nil {
			return
		}
		w.seen.begin()
		next, done := w.safeSync(ctx)
		if w.seen.end() {
			w.wakeUp()
		}
		w.endTurn()
		if ctx.Err() != nil {
			return
		}
		if done && w.host.retire(w) {
			logger.V(2).Info("Pod is gone; worker stops")
			return
		}
		w.host.schedule(w, next)
	}
}

// takeTurn waits until nothing else uses the worker's state, or ctx ends.
func (w *podWorker) takeTurn(ctx context.Context) error {
	select {
	case w.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// endTurn gives the worker's state back.
func (w *podWorker) endTurn() { <-w.turn }

// safeSync syncs the pod; a panic in the sync is logged with its stack and
// the pod is retried later, so one bad pod cannot stop the others.
func (w *podWorker) safeSync(ctx context.Context) (next time.Duration, done bool) {
	defer func() {
		if r := recover(); r != nil {
			klog.FromContext(ctx).Error(fmt.Errorf("panic: %v", r), "Pod sync panicked; retrying later", "stack", string(debug.Stack()))
			next, done = w.retryDelay(), false
		}
	}()
	return w.sync(ctx)
}

// retryDelay returns the delay before retrying a failed sync, doubling it
// for the next failure.
func (w *podWorker) retryDelay() time.Duration {
	s := w.state
	if s.retry == 0 {
		s.retry = minRetry
	} else {
		s.retry = min(2*s.retry, maxRetry)
	}
	return s.retry
}

// sync brings the runtime in line with the pod and publishes its status.
func (w *podWorker) sync(ctx context.Context) (time.Duration, bool) {
	logger := klog.FromContext(ctx)
	view := w.host.snapshot(w)
	rt, err := w.observeSync(ctx)
	if err != nil {
		logger.Error(err, "Cannot observe the pod's containers")
		return w.retryDelay(), false
	}
	if view.removed {
		w.probes.StopAll()
		if err := w.cleanup(ctx, rt); err != nil {
			logger.Error(err, "Cannot remove the pod's containers")
			return w.retryDelay(), false
		}
		return 0, true
	}
	pod := view.pod
	logger = logger.WithValues("pod", klog.KObj(pod))
	ctx = klog.NewContext(ctx, logger)
	if w.static {
		var wait bool
		if pod, wait = w.prepareStatic(ctx, pod, view); wait {
			// The previous version's worker wakes this one when it goes.
			return w.syncFrequency, false
		}
	}
	w.state.lastPod = pod
	if pod.DeletionTimestamp != nil || podstatus.IsTerminalPhase(pod.Status.Phase) || view.rejection != nil {
		// Nothing of the pod is kept running: nothing to probe.
		w.probes.StopAll()
	}
	switch {
	case pod.DeletionTimestamp != nil:
		if w.static && w.state.static.stopped {
			// Stopped already; the worker only had news since.
			return 0, true
		}
		if err = w.terminate(ctx, pod, rt); err == nil {
			w.host.markTerminated(w)
			if w.static {
				// Nothing else will tell a static pod's worker to go.
				w.state.static.stopped = true
				return 0, true
			}
		}
	case podstatus.IsTerminalPhase(pod.Status.Phase):
		if err = w.stopFinished(ctx, pod, rt); err == nil {
			w.host.markTerminated(w)
		}
	case view.rejection != nil:
		err = w.reject(ctx, pod, rt, *view.rejection)
	case w.pastDeadline(pod):
		if err = w.stopForDeadline(ctx, pod, rt); err == nil {
			w.state.retry = 0
			return w.syncFrequency, false
		}
	default:
		var next time.Duration
		next, err = w.runPod(ctx, pod, rt)
		if err == nil {
			w.state.retry = 0
			return untilDeadline(pod, w.startTime(pod), w.clock.Now(), next), false
		}
	}
	if err != nil {
		logger.Error(err, "Pod sync failed; retrying")
		return w.retryDelay(), false
	}
	w.state.retry = 0
	return w.syncFrequency, false
}

// runPod runs a pod that is neither finished nor being deleted: volumes,
// then rounds of computePodActions until nothing is left to do right now.
func (w *podWorker) runPod(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) (time.Duration, error) {
	// Publish first, as the kubelet does: a pod whose sandbox or volumes
	// take long shows ContainerCreating meanwhile. In the background: in a
	// burst of pods the API client's rate limit would otherwise hold every
	// pod's sandbox back behind every other pod's status.
	trace := w.state.trace
	trace.mark("queued")
	// From here on the pod carries its allocated resources, which may
	// lag behind a resize of its spec.
	pod = w.allocate(ctx, pod, rt)
	w.publishInBackground(ctx, pod, rt)
	if w.host.ShuttingDown() {
		// The node shuts down: start nothing.
		return w.syncFrequency, nil
	}
	mounts, err := w.volumes.Setup(ctx, pod)
	if err != nil {
		// The status first: who sees the event sees why the pod waits.
		w.publishNow()
		w.recorder.Eventf(pod, v1.EventTypeWarning, "FailedMount", "MountVolume.SetUp failed: %v", err)
		return 0, fmt.Errorf("set up volumes: %w", err)
	}
	trace.mark("volumes")
	if killed, err := w.killUnhealthy(ctx, pod, rt); killed {
		if rt, err = podruntime.Observe(ctx, w.cri, w.uid); err != nil {
			return 0, err
		}
	} else if err != nil {
		return 0, err
	}
	resized, resizeErr := w.actuateResize(ctx, pod, rt, mounts)
	if resized {
		if rt, err = podruntime.Observe(ctx, w.cri, w.uid); err != nil {
			return 0, err
		}
	}
	r, err := w.applyRounds(ctx, pod, rt, mounts)
	if err != nil {
		return 0, err
	}
	rt, next, finished, applyErr := r.rt, r.next, r.finished, r.applyErr
	trace.mark("containers")
	w.collectGarbage(ctx, rt)
	w.state.finished = finished
	if finished {
		w.probes.StopAll()
	} else {
		w.probes.Sync(ctx, pod, rt, w.podIP(pod, rt))
	}
	w.noteResizeProgress(pod, rt)
	w.seen.observed(rt)
	if err := w.publish(ctx, pod, rt); err != nil {
		return 0, err
	}
	if trace != nil && trace.running {
		trace.log(klog.FromContext(ctx))
		w.state.trace = nil
	}
	if finished {
		w.host.markTerminated(w)
		if err := w.teardownOnce(ctx); err != nil {
			return 0, err
		}
	}
	if applyErr != nil {
		klog.FromContext(ctx).V(2).Info("Some containers did not start; retrying", "err", applyErr)
		next = min(next, w.retryDelay())
	}
	if resizeErr != nil {
		klog.FromContext(ctx).Info("Pod resize failed; retrying", "err", resizeErr)
		next = min(next, w.retryDelay())
	}
	if d := w.runtime.PullWait(); d > 0 {
		next = min(next, d)
	}
	return next, nil
}

// roundsResult is what the rounds of actions of one sync left.
type roundsResult struct {
	// rt is the pod's runtime state after them.
	rt *podruntime.PodState
	// next is when to sync again at the latest (a back-off ends).
	next time.Duration
	// finished tells that the pod ran to completion.
	finished bool
	// applyErr is the error of the last round's actions.
	applyErr error
}

// applyRounds runs rounds of ComputePodActions and their actions until
// nothing is left to do right now, the pod finished or an action failed.
func (w *podWorker) applyRounds(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState, mounts map[string]string) (roundsResult, error) {
	r := roundsResult{rt: rt, next: resyncAfter(pod, w.syncFrequency)}
	for round := 0; round < len(pod.Spec.InitContainers)+len(pod.Spec.Containers)+3; round++ {
		acts := podruntime.ComputePodActions(pod, r.rt, w.gate())
		r.next = min(r.next, w.noteBackoffs(pod, r.rt, acts))
		if acts.Empty() {
			break
		}
		r.applyErr = w.runtime.Apply(ctx, pod, r.rt, acts, mounts)
		var err error
		if r.rt, err = podruntime.Observe(ctx, w.cri, w.uid); err != nil {
			return r, err
		}
		if acts.Finished {
			r.finished = true
			break
		}
		if r.applyErr != nil {
			break
		}
	}
	return r, nil
}

// apiDataRefresh is the longest a running pod with configMap, secret,
// downward API or projected volumes goes without a sync, which rewrites
// those volumes from the API: a change of the object is in the volume
// within a minute (this, plus the sync itself), even with the kubelet's
// default syncFrequency of one minute.
const apiDataRefresh = 45 * time.Second

// resyncAfter is when a running pod is synced again without news.
func resyncAfter(pod *v1.Pod, syncFrequency time.Duration) time.Duration {
	for i := range pod.Spec.Volumes {
		src := &pod.Spec.Volumes[i].VolumeSource
		if src.ConfigMap != nil || src.Secret != nil || src.DownwardAPI != nil || src.Projected != nil {
			return min(syncFrequency, apiDataRefresh)
		}
	}
	return syncFrequency
}

// gate is the crash back-off as computePodActions asks for it.
func (w *podWorker) gate() podruntime.RestartGate {
	return func(name string, last *podruntime.ContainerState) time.Duration {
		return w.runtime.Crash.Remaining(name, podruntime.ExitTime(last))
	}
}

// noteBackoffs records CrashLoopBackOff for the containers whose restart
// waits, emits a BackOff event once per exited instance, and returns when
// the first of them may start.
func (w *podWorker) noteBackoffs(pod *v1.Pod, rt *podruntime.PodState, acts podruntime.Actions) time.Duration {
	next := w.syncFrequency
	for name, wait := range acts.BackOff {
		next = min(next, wait)
		cur := rt.Current(name)
		id := ""
		if cur != nil {
			id = cur.ID
		}
		if prev, ok := w.runtime.Waiting[name]; ok && prev.Reason == podruntime.ReasonCrashLoopBackOff && prev.ForID == id {
			continue
		}
		w.runtime.Waiting[name] = podruntime.WaitingReason{
			Reason: podruntime.ReasonCrashLoopBackOff,
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				w.runtime.Crash.Delay(name), name, pod.Name, pod.Namespace, pod.UID),
			ForID: id,
		}
		w.recorder.Eventf(pod, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", name, pod.Name, pod.Namespace, pod.UID)
	}
	return next
}

// teardownOnce removes the volumes of a finished pod.
func (w *podWorker) teardownOnce(ctx context.Context) error {
	if w.state.tornDown {
		return nil
	}
	if err := w.volumes.Teardown(ctx, w.uid); err != nil {
		return fmt.Errorf("tear down volumes: %w", err)
	}
	w.state.tornDown = true
	return nil
}
