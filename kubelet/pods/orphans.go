package pods

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// sweepOrphanedVolumes starts a cleanup worker for every pod directory
// below the kubelet root that still holds volumes but belongs to no pod
// berth runs. The runtime's relist finds the pods deleted while berth was
// down whose sandbox is left; this finds those whose sandbox is gone too
// (a reboot, a runtime that lost its state, a cleanup that removed the
// sandbox and then failed to tear the volumes down before a restart), so
// that their CSI volumes are unpublished and their mounts go. The worker
// retries a failed Teardown (a CSI driver not registered again yet) with
// its back-off.
func (m *Manager) sweepOrphanedVolumes(ctx context.Context) {
	podsDir := filepath.Join(m.cfg.RootDir, "pods")
	entries, err := os.ReadDir(podsDir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			klog.FromContext(ctx).Error(err, "Cannot list pod directories for orphaned volumes")
		}
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Until every source has delivered its pods, a directory may belong
	// to a pod not seen yet.
	if !m.sourcesReadyLocked() {
		return
	}
	for _, e := range entries {
		uid := types.UID(e.Name())
		if _, ok := m.workers[uid]; ok || !e.IsDir() || !holdsVolumes(filepath.Join(podsDir, e.Name())) {
			continue
		}
		klog.FromContext(ctx).V(2).Info("Pod directory holds volumes of no known pod: tearing them down", "podUID", uid)
		w := newPodWorker(m, uid, false)
		w.removed = true
		m.startWorkerLocked(w)
	}
}

// holdsVolumes reports whether the pod directory has what the volume
// manager sets up and only Teardown removes.
func holdsVolumes(dir string) bool {
	for _, sub := range []string{"volumes", "volumeDevices"} {
		if _, err := os.Lstat(filepath.Join(dir, sub)); err == nil {
			return true
		}
	}
	return false
}
