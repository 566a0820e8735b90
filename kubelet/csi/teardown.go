package csi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	utilstrings "k8s.io/utils/strings"
)

// TearDown unpublishes a pod's CSI volume and removes its directory, then
// unstages the volume when no other pod on the node uses it any more. It
// reads only the disk (vol_data.json), so it works for volumes published
// before a restart of berth. A volume with nothing on disk is done.
func (m *Manager) TearDown(ctx context.Context, podUID types.UID, specName string) error {
	key := podKey(podUID, specName)
	if op := m.operation(key); op != nil && !isDone(op) {
		call, _ := op.call.Load().(string)
		return fmt.Errorf("volume %q: %s %w", specName, call, ErrInProgress)
	}
	dir := podVolumeDir(m.cfg.RootDir, podUID, specName)
	data, err := readVolData(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if handled, err := m.tearDownBlock(ctx, podUID, specName); handled {
			return err
		}
		m.forget(key)
		return removeMountDir(filepath.Join(dir, "mount"))
	}
	if err != nil {
		return fmt.Errorf("volume %q: %w", specName, err)
	}
	name, handle := data[keyDriverName], data[keyVolumeHandle]
	logger := klog.FromContext(ctx).WithValues("volume", specName, "driver", name, "handle", handle)
	ctx = klog.NewContext(ctx, logger)
	d, err := m.registered(name)
	if err != nil {
		return fmt.Errorf("volume %q: %w", specName, err)
	}
	unlock := m.volLocks.lock(string(UniqueName(name, handle)))
	defer unlock()
	target := filepath.Join(dir, "mount")
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	if _, err := d.node.NodeUnpublishVolume(callCtx, &csipb.NodeUnpublishVolumeRequest{VolumeId: handle, TargetPath: target}); err != nil {
		return fmt.Errorf("UnmountVolume.TearDown failed for volume %q: %w", specName, err)
	}
	if err := removeMountDir(target); err != nil {
		return fmt.Errorf("UnmountVolume.TearDown failed for volume %q: %w", specName, err)
	}
	m.forget(key)
	logger.V(2).Info("Unpublished CSI volume")
	if data[keyLifecycleMode] == string(storagev1.VolumeLifecycleEphemeral) {
		return nil
	}
	return m.unstageUnused(ctx, d, name, handle)
}

// forget drops what SetUp remembered of a pod's volume.
func (m *Manager) forget(key string) {
	m.mu.Lock()
	_, changed := m.inUse[key]
	delete(m.inUse, key)
	delete(m.published, key)
	delete(m.statsTargets, key)
	if op := m.ops[key]; op != nil && isDone(op) {
		delete(m.ops, key)
	}
	m.mu.Unlock()
	// Not under the lock: the node controller asks VolumesInUse.
	if changed {
		m.inUseChanged()
	}
}

// unstageUnused calls NodeUnstageVolume and removes the staging directory
// when no pod volume directory on the node refers to the volume any more.
// The caller holds the volume's lock.
func (m *Manager) unstageUnused(ctx context.Context, d *driver, name, handle string) error {
	staging := stagingPath(m.cfg.RootDir, name, handle)
	if _, err := readVolData(filepath.Dir(staging)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	users, err := m.diskUsers(name, handle)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		klog.FromContext(ctx).V(4).Info("Staged volume still used", "pods", users)
		return nil
	}
	if d.has(csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME) {
		callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
		defer cancel()
		if _, err := d.node.NodeUnstageVolume(callCtx, &csipb.NodeUnstageVolumeRequest{VolumeId: handle, StagingTargetPath: staging}); err != nil {
			return fmt.Errorf("UnmountDevice failed for volume %s: %w", UniqueName(name, handle), err)
		}
	}
	if err := removeMountDir(staging); err != nil {
		return fmt.Errorf("UnmountDevice failed for volume %s: %w", UniqueName(name, handle), err)
	}
	m.mu.Lock()
	delete(m.attached, string(UniqueName(name, handle)))
	delete(m.staged, string(UniqueName(name, handle)))
	m.mu.Unlock()
	klog.FromContext(ctx).V(2).Info("Unstaged CSI volume", "stagingPath", staging)
	return nil
}

// publishedVolume is a pod's CSI volume as found on disk.
type publishedVolume struct {
	podUID   types.UID
	specName string
	data     volData
}

// onDisk lists the pod CSI volumes with a vol_data.json under the root
// directory.
func (m *Manager) onDisk() ([]publishedVolume, error) {
	pattern := filepath.Join(m.cfg.RootDir, "pods", "*", "volumes", utilstrings.EscapeQualifiedName(PluginName), "*", volDataFile)
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("list CSI volumes: %w", err)
	}
	var out []publishedVolume
	for _, f := range files {
		dir := filepath.Dir(f)
		data, err := readVolData(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		uid := filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(dir))))
		out = append(out, publishedVolume{podUID: types.UID(uid), specName: data[keySpecVolID], data: data})
	}
	return out, nil
}

// diskUsers returns the pods whose volume directories refer to the volume.
func (m *Manager) diskUsers(name, handle string) ([]types.UID, error) {
	vols, err := m.onDisk()
	if err != nil {
		return nil, err
	}
	var users []types.UID
	for _, v := range vols {
		if v.data[keyDriverName] == name && v.data[keyVolumeHandle] == handle {
			users = append(users, v.podUID)
		}
	}
	return users, nil
}

// isDone tells whether op has finished.
func isDone(op *operation) bool {
	select {
	case <-op.done:
		return true
	default:
		return false
	}
}
