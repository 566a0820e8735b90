package pods

import (
	"context"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// relistOnce lists the runtime, wakes the workers of pods whose runtime
// state changed or whose retry time came, and, once every source of pods
// is ready, makes workers for sandboxes of pods no source knows (to remove
// them).
func (m *Manager) relistOnce(ctx context.Context) {
	logger := klog.FromContext(ctx)
	res, err := m.relister.Relist(ctx)
	if err != nil {
		logger.Error(err, "Relist of the container runtime failed")
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ready := m.sourcesReadyLocked()
	for uid, changed := range res.Listed {
		w, ok := m.workers[uid]
		switch {
		case ok:
			if w.watch.relisted(changed, res.Prints[uid]) {
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
	for _, uid := range res.Gone {
		if w, ok := m.workers[uid]; ok {
			w.wakeUp()
		}
	}
	for _, w := range m.workers {
		if !w.nextSync.IsZero() && !res.Time.Before(w.nextSync) {
			w.nextSync = time.Time{}
			w.wakeUp()
		}
	}
}

// runtimeWatch is what a worker knows of its pod's runtime state against
// the relist: the relist wakes the worker only for a change the worker has
// not observed itself. Without it the sandbox and the containers a sync
// just started cost a second sync each (a CRI observe of the pod and a GET
// of its API volumes' objects). Its own lock: the relist and the worker's
// goroutine use it.
type runtimeWatch struct {
	mu sync.Mutex
	// observed is the fingerprint of the runtime state the worker's last
	// sync ended with ("": none since the last relist found a change).
	observed string
	// syncing tells that a sync runs; missed that a relist found a
	// change meanwhile, which it left to the sync's end.
	syncing, missed bool
}

// relisted tells whether a relist that found the pod with fingerprint
// fp (changed since the relist before) wakes the worker: when what it
// found differs from what the worker observed last, or else from what the
// relist before found. What the worker observed is stale then: the next
// relist compares with this one's, until the worker's next sync ends. A
// change found during a sync is left to the sync's end (see endSync).
func (r *runtimeWatch) relisted(changed bool, fp string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.observed != "" {
		changed = fp != r.observed
	}
	if !changed {
		return false
	}
	r.observed = ""
	if r.syncing {
		r.missed = true
		return false
	}
	return true
}

// beginSync marks a sync as running: a relist meanwhile does not wake the
// worker.
func (r *runtimeWatch) beginSync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.syncing, r.observed = true, ""
}

// observe records fp, the fingerprint of the runtime state a sync ends
// with.
func (r *runtimeWatch) observe(fp string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observed = fp
}

// endSync ends a sync and tells whether the worker must sync again for a
// change a relist found during it: not when the sync ended with an
// observation of the runtime, for then the next relist compares with that,
// and wakes the worker only for what came later. In a burst of pods a
// relist falls into nearly every pod's first sync, which takes seconds,
// and finds the sandbox it was starting.
func (r *runtimeWatch) endSync() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	wake := r.missed && r.observed == ""
	r.syncing, r.missed = false, false
	return wake
}
