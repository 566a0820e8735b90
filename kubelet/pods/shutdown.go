package pods

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podstatus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// Kubelet's pod status on a graceful node shutdown.
const (
	shutdownReason  = "Terminated"
	shutdownMessage = "Pod was terminated in response to imminent node shutdown."
)

// SetShuttingDown tells the manager that the node is (or no longer is)
// shutting down: meanwhile new pods are rejected and no container is
// started.
func (m *Manager) SetShuttingDown(down bool) {
	m.shuttingDown.Store(down)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.workers {
		w.wakeUp()
	}
}

// ShuttingDown tells whether the node is shutting down.
func (m *Manager) ShuttingDown() bool { return m.shuttingDown.Load() }

// StopPods stops the running pods of one class, critical (priority ≥
// 2,000,000,000) or not, each within the smaller of its own grace period
// and grace, and marks them Failed as kubelet does on a node shutdown. It
// returns when all are stopped or ctx ends.
func (m *Manager) StopPods(ctx context.Context, critical bool, grace time.Duration) error {
	m.mu.Lock()
	var targets []*podWorker
	for _, w := range m.workers {
		if w.pod == nil || w.static || w.terminated || podstatus.IsTerminalPhase(w.pod.Status.Phase) {
			continue
		}
		if isCritical(w.pod) == critical {
			targets = append(targets, w)
		}
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(targets))
	for i, w := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.stopForShutdown(ctx, grace)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func isCritical(pod *v1.Pod) bool {
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= podruntime.CriticalPriority
}

// stopForShutdown stops the worker's pod within grace and publishes it
// Failed. It runs beside the worker's goroutine, which starts nothing
// while the node shuts down; it takes the worker's turn only to compute
// and send the status, so a sync in progress never delays the stop.
func (w *podWorker) stopForShutdown(ctx context.Context, grace time.Duration) error {
	pod := w.host.podOf(w)
	logger := klog.FromContext(ctx).WithValues("pod", klog.KObj(pod))
	rt, err := podruntime.Observe(ctx, w.cri, w.uid)
	if err != nil {
		return err
	}
	seconds := min(podruntime.SpecGracePeriod(pod), int64(grace/time.Second))
	logger.Info("Stopping pod for the node shutdown", "gracePeriod", seconds)
	if err := w.runtime.KillPod(ctx, pod, rt, seconds); err != nil {
		return fmt.Errorf("stop pod %s for the node shutdown: %w", klog.KObj(pod), err)
	}
	if rt, err = podruntime.Observe(ctx, w.cri, w.uid); err != nil {
		return err
	}
	// The status is the worker's state's to compute: wait for its sync to
	// end, if one runs.
	if err := w.takeTurn(ctx); err != nil {
		return err
	}
	defer w.endTurn()
	st := w.podStatus(ctx, pod, rt)
	st.Phase, st.Reason, st.Message = v1.PodFailed, shutdownReason, shutdownMessage
	w.pending.Wait()
	w.sending.Lock()
	defer w.sending.Unlock()
	return w.sendStatus(ctx, pod, st)
}
