package csi

import (
	"context"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// statsMaxAge is how long a volume's statistics are served before the
// driver is asked again: the kubelet, too, asks each volume about once a
// minute, so that scrapes do not turn into driver calls.
const statsMaxAge = time.Minute

// statsTimeout bounds a NodeGetVolumeStats call: a scrape of the summary
// waits for it.
const statsTimeout = 10 * time.Second

// statsTarget is a published volume whose statistics the summary reports.
type statsTarget struct {
	podUID types.UID
	// name is the pod's volume name; pvc the claim, nil for inline volumes.
	name   string
	pvc    *statsapi.PVCReference
	driver string
	handle string
	path   string
	// stats and at are the last answer and when it was asked for (a
	// failed call is not repeated before statsMaxAge either).
	stats *statsapi.VolumeStats
	at    time.Time
}

// rememberStatsTarget records a published volume for VolumeStats.
func (m *Manager) rememberStatsTarget(key string, pod *v1.Pod, vol Volume, r *request, path string) {
	if r.block {
		// The summary has no figures for block volumes.
		return
	}
	t := &statsTarget{podUID: pod.UID, name: vol.SpecName, driver: r.driver, handle: r.handle, path: path}
	if vol.PVC != nil {
		t.pvc = &statsapi.PVCReference{Name: vol.PVC.Name, Namespace: vol.PVC.Namespace}
		t.name = podVolumeName(pod, vol.PVC.Name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.statsTargets[key]; old != nil && old.path == path {
		return
	}
	m.statsTargets[key] = t
}

// podVolumeName is the name of the pod's volume that uses the claim: a
// persistentVolumeClaim volume, or a generic ephemeral one (whose claim is
// named <pod>-<volume>).
func podVolumeName(pod *v1.Pod, claim string) string {
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
			return v.Name
		}
		if v.Ephemeral != nil && pod.Name+"-"+v.Name == claim {
			return v.Name
		}
	}
	return claim
}

// VolumeStats returns the statistics of the published CSI volumes whose
// driver has GET_VOLUME_STATS, by pod UID, from NodeGetVolumeStats (asked
// at most once a minute per volume).
func (m *Manager) VolumeStats(ctx context.Context) map[types.UID][]statsapi.VolumeStats {
	m.mu.Lock()
	targets := make([]*statsTarget, 0, len(m.statsTargets))
	for _, t := range m.statsTargets {
		targets = append(targets, t)
	}
	m.mu.Unlock()
	now := m.cfg.Clock.Now()
	out := map[types.UID][]statsapi.VolumeStats{}
	for _, t := range targets {
		m.mu.Lock()
		s, at := t.stats, t.at
		m.mu.Unlock()
		if at.IsZero() || now.Sub(at) >= statsMaxAge {
			s = m.askStats(ctx, t)
			m.mu.Lock()
			t.stats, t.at = s, now
			m.mu.Unlock()
		}
		if s != nil {
			out[t.podUID] = append(out[t.podUID], *s)
		}
	}
	return out
}

// askStats calls NodeGetVolumeStats for t; nil when the driver cannot say.
func (m *Manager) askStats(ctx context.Context, t *statsTarget) *statsapi.VolumeStats {
	d, err := m.registered(t.driver)
	if err != nil || !d.has(csipb.NodeServiceCapability_RPC_GET_VOLUME_STATS) {
		return nil
	}
	callCtx, cancel := context.WithTimeout(ctx, min(m.cfg.CallTimeout, statsTimeout))
	defer cancel()
	resp, err := d.node.NodeGetVolumeStats(callCtx, &csipb.NodeGetVolumeStatsRequest{VolumeId: t.handle, VolumePath: t.path})
	if err != nil {
		klog.FromContext(ctx).V(2).Info("NodeGetVolumeStats failed", "driver", t.driver, "volume", t.name, "err", err)
		return nil
	}
	s := &statsapi.VolumeStats{Name: t.name, PVCRef: t.pvc}
	s.Time = metav1.NewTime(m.cfg.Clock.Now())
	for _, u := range resp.GetUsage() {
		total, used, avail := uint64(u.GetTotal()), uint64(u.GetUsed()), uint64(u.GetAvailable())
		switch u.GetUnit() {
		case csipb.VolumeUsage_BYTES:
			s.CapacityBytes, s.UsedBytes, s.AvailableBytes = &total, &used, &avail
		case csipb.VolumeUsage_INODES:
			s.Inodes, s.InodesUsed, s.InodesFree = &total, &used, &avail
		}
	}
	return s
}
