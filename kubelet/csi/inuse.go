package csi

import (
	"context"
	"path/filepath"
	"slices"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/klog/v2"
)

// VolumesInUse returns the unique names of the CSI volumes the node uses
// and that need attaching, for the node status's volumesInUse: the attach/
// detach controller does not detach them. As with the kubelet, these are
// the persistent volumes of drivers whose CSIDriver object does not say
// attachRequired: false, from the moment SetUp is asked for them until
// their TearDown; after a restart, those published on disk.
func (m *Manager) VolumesInUse(ctx context.Context) []v1.UniqueVolumeName {
	type volume struct{ driver, handle string }
	var vols []volume
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	for key, v := range m.inUse {
		if now.Sub(v.at) > inUseTTL {
			delete(m.inUse, key)
			continue
		}
		vols = append(vols, volume{v.driver, v.handle})
	}
	m.mu.Unlock()
	disk, err := m.onDisk()
	if err != nil {
		klog.FromContext(ctx).Error(err, "Listing the CSI volumes on disk failed")
	}
	for _, v := range disk {
		if v.data[keyLifecycleMode] != string(storagev1.VolumeLifecycleEphemeral) {
			vols = append(vols, volume{v.data[keyDriverName], v.data[keyVolumeHandle]})
		}
	}
	blocks, _ := filepath.Glob(filepath.Join(blockRoot(m.cfg.RootDir), "*", "data", volDataFile))
	for _, f := range blocks {
		if data, err := readVolData(filepath.Dir(f)); err == nil {
			vols = append(vols, volume{data[keyDriverName], data[keyVolumeHandle]})
		}
	}
	var out []v1.UniqueVolumeName
	need := map[string]bool{}
	for _, v := range vols {
		req, ok := need[v.driver]
		if !ok {
			obj, err := m.driverObject(ctx, v.driver)
			// Without an answer, report the volume: reporting one too
			// many only delays a detach.
			req = err != nil || attachRequired(obj)
			need[v.driver] = req
		}
		if req {
			out = append(out, UniqueName(v.driver, v.handle))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
