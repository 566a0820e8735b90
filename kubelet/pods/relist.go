package pods

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/cri"
)

// relistState is what the relist loop remembers between runs. It is guarded
// by Manager.mu.
type relistState struct {
	// last is when the runtime was last listed successfully.
	last time.Time
	// fingerprints sum up each pod's sandboxes and containers and their
	// states; a change wakes the pod's worker.
	fingerprints map[types.UID]string
	// running counts pods with a ready sandbox.
	running int
	// containers counts the containers by state ("running", "exited",
	// "created", "unknown"), as kubelet_running_containers does.
	containers map[string]int
}

// relistOnce lists the runtime, wakes the workers of pods whose runtime
// state changed or whose retry time came, and, once every source of pods
// is ready, makes workers for sandboxes of pods no source knows (to remove
// them).
func (m *Manager) relistOnce(ctx context.Context) {
	logger := klog.FromContext(ctx)
	prints, running, containers, err := m.listRuntime(ctx)
	if err != nil {
		logger.Error(err, "Relist of the container runtime failed")
		return
	}
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.relist.fingerprints
	ready := m.sourcesReadyLocked()
	for uid, fp := range prints {
		w, ok := m.workers[uid]
		switch {
		case ok && fp != w.knownPrint(old[uid]):
			// What the worker observed is stale now: the next relist
			// compares with this one's, until its next sync ends.
			w.observedPrint = ""
			if w.syncing {
				w.missedRelist = true
			} else {
				w.wakeUp()
			}
		case !ok && ready:
			// Checked at every relist, not only on change: what was
			// listed before the sources were ready is a stray too.
			logger.V(2).Info("Runtime holds a pod no source knows: removing it", "podUID", uid)
			w := newPodWorker(m, uid, false)
			w.removed = true
			m.startWorkerLocked(w)
		}
	}
	for uid := range old {
		if _, ok := prints[uid]; !ok {
			if w, ok := m.workers[uid]; ok {
				w.wakeUp()
			}
		}
	}
	for _, w := range m.workers {
		if !w.nextSync.IsZero() && !now.Before(w.nextSync) {
			w.nextSync = time.Time{}
			w.wakeUp()
		}
	}
	m.relist = relistState{last: now, fingerprints: prints, running: running, containers: containers}
}

// listRuntime sums up the runtime's sandboxes and containers per pod, and
// counts the pods with a ready sandbox and the containers by state.
func (m *Manager) listRuntime(ctx context.Context) (map[types.UID]string, int, map[string]int, error) {
	sandboxes, err := m.cfg.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("list sandboxes: %w", err)
	}
	containers, err := m.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("list containers: %w", err)
	}
	states := map[string]int{}
	parts := map[types.UID][]string{}
	ready := map[types.UID]bool{}
	for _, s := range sandboxes {
		uid := types.UID(s.Labels[labelPodUID])
		if uid == "" {
			continue
		}
		parts[uid] = append(parts[uid], sandboxPrint(s.Id, s.State))
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			ready[uid] = true
		}
	}
	for _, c := range containers {
		uid := types.UID(c.Labels[labelPodUID])
		if uid == "" {
			continue
		}
		states[cri.ContainerStateName(c.State)]++
		parts[uid] = append(parts[uid], containerPrint(c.Id, c.State))
	}
	out := make(map[types.UID]string, len(parts))
	for uid, p := range parts {
		out[uid] = joinPrint(p)
	}
	return out, len(ready), states, nil
}

// sandboxPrint and containerPrint are the parts of a pod's fingerprint.
func sandboxPrint(id string, state runtimeapi.PodSandboxState) string {
	return "s:" + id + ":" + state.String()
}

func containerPrint(id string, state runtimeapi.ContainerState) string {
	return "c:" + id + ":" + state.String()
}

// joinPrint makes a fingerprint of its parts, in any order.
func joinPrint(parts []string) string {
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// fingerprint is the relist's fingerprint of what the worker observed.
func (r *podRuntime) fingerprint() string {
	var parts []string
	for _, s := range r.Sandboxes {
		state := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
		if s.Ready {
			state = runtimeapi.PodSandboxState_SANDBOX_READY
		}
		parts = append(parts, sandboxPrint(s.ID, state))
	}
	for _, c := range r.Containers {
		parts = append(parts, containerPrint(c.ID, c.State))
	}
	return joinPrint(parts)
}

// runtimeHeldNothing tells whether a relist has listed the runtime and
// found nothing of the pod with uid.
func (m *Manager) runtimeHeldNothing(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.relist.last.IsZero() {
		return false
	}
	_, listed := m.relist.fingerprints[uid]
	return !listed
}

// knownPrint is the fingerprint of the pod's runtime state the worker
// knows: what it observed last, or else what the previous relist found.
// The relist wakes the worker only for a change it has not seen: not for
// the sandbox and containers its own sync just started. m.mu is held.
func (w *podWorker) knownPrint(previous string) string {
	if w.observedPrint != "" {
		return w.observedPrint
	}
	return previous
}
