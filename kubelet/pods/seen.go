package pods

import (
	"context"
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/relist"
)

// runtimeSeen is what a worker has seen of its pod's runtime state, so that
// the relist wakes it only for changes it has not seen: not for the
// sandbox and containers its own sync just started, nor, in a burst of
// pods, for what a relist finds in the middle of a sync that takes
// seconds. The worker writes it; the relist reads it under Manager.mu,
// and its own lock is taken after that one, never before.
type runtimeSeen struct {
	mu sync.Mutex
	// print is the fingerprint of what the worker's last sync ended with
	// ("" when unknown or stale).
	print string
	// syncing tells that a sync runs; missed that a relist found a change
	// meanwhile, left to the sync's end.
	syncing, missed bool
}

// relisted tells whether a relist that found the pod with fingerprint fp
// (changed since the previous relist or not) should wake the worker.
func (s *runtimeSeen) relisted(fp string, changed bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.print != "" {
		changed = fp != s.print
	}
	if !changed {
		return false
	}
	// What the worker saw is stale now: the next relist compares with
	// this one, until the worker's next sync ends.
	s.print = ""
	if s.syncing {
		s.missed = true
		return false
	}
	return true
}

// begin marks a sync as running.
func (s *runtimeSeen) begin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncing, s.print = true, ""
}

// observed records the runtime state a running pod's sync ended with.
func (s *runtimeSeen) observed(rt *podruntime.PodState) {
	print := podPrint(rt)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.print = print
}

// end marks the sync as done and tells whether to wake the worker for a
// change a relist found meanwhile: not when the sync ended with an
// observation of the runtime, which the next relist compares with.
func (s *runtimeSeen) end() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	wake := s.missed && s.print == ""
	s.syncing, s.missed = false, false
	return wake
}

// podPrint is the relist's fingerprint of what a worker observed.
func podPrint(rt *podruntime.PodState) string {
	var parts []string
	for _, s := range rt.Sandboxes {
		state := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		if s.Ready {
			state = runtimeapi.PodSandboxState_SANDBOX_READY
		}
		parts = append(parts, relist.SandboxPart(s.ID, state))
	}
	for _, c := range rt.Containers {
		parts = append(parts, relist.ContainerPart(c.ID, c.State))
	}
	return relist.Fingerprint(parts)
}

// observeSync observes what the runtime holds of the pod at the start of
// a sync. At a worker's first sync that is nothing when the last relist
// found nothing of the pod: only this worker starts sandboxes for its pod,
// and what a berth before this one left was listed by that relist. A new
// pod then costs no list of its sandboxes and containers to find none.
func (w *podWorker) observeSync(ctx context.Context) (*podruntime.PodState, error) {
	first := !w.state.synced
	w.state.synced = true
	if first && !w.static {
		if found, listed := w.relisted(w.uid); listed && !found {
			return &podruntime.PodState{}, nil
		}
	}
	return podruntime.Observe(ctx, w.cri, w.uid)
}
