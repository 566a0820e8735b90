package pods

import (
	"context"
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
		case ok && w.seen.relisted(res.Prints[uid], changed):
			w.wakeUp()
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
