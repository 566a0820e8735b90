package csi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	utilstrings "k8s.io/utils/strings"
)

// The kubelet's layout of CSI block volumes (volumeMode: Block), below
// <root>/plugins/kubernetes.io/csi/volumeDevices:
//
//	staging/<pv>              the staging directory (NodeStageVolume)
//	publish/<pv>/<pod UID>    the device each pod gets (NodePublishVolume)
//	<pv>/data/vol_data.json   what TearDown needs
//
// and the pod's entry pods/<uid>/volumeDevices/kubernetes.io~csi/<pv>, which
// here links to the published device.

// blockRoot is the root of the kubelet's CSI block volume directories.
func blockRoot(root string) string {
	return filepath.Join(root, "plugins", PluginName, "volumeDevices")
}

func blockStagingPath(root, specName string) string {
	return filepath.Join(blockRoot(root), "staging", specName)
}

func blockPublishDir(root, specName string) string {
	return filepath.Join(blockRoot(root), "publish", specName)
}

func blockDataDir(root, specName string) string {
	return filepath.Join(blockRoot(root), utilstrings.EscapeQualifiedName(specName), "data")
}

// podDeviceLink is the pod's entry for a block volume.
func podDeviceLink(root string, podUID types.UID, specName string) string {
	return filepath.Join(root, "pods", string(podUID), "volumeDevices",
		utilstrings.EscapeQualifiedName(PluginName), utilstrings.EscapeQualifiedName(specName))
}

// mountBlock stages (when the driver stages) and publishes a block volume
// for the pod. The caller holds the volume's lock.
func (m *Manager) mountBlock(ctx context.Context, d *driver, r *request, op *operation) (Mounted, error) {
	dataDir := blockDataDir(m.cfg.RootDir, r.specName)
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return Mounted{}, fmt.Errorf("create block volume directory: %w", err)
	}
	data := publishData(r.specName, r.handle, r.driver, m.cfg.NodeName, r.mode)
	delete(data, keyLifecycleMode)
	if err := writeVolData(dataDir, data); err != nil {
		return Mounted{}, err
	}
	staging := ""
	if d.has(csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME) {
		staging = blockStagingPath(m.cfg.RootDir, r.specName)
		unique := string(UniqueName(r.driver, r.handle))
		m.mu.Lock()
		staged := m.staged[unique]
		m.mu.Unlock()
		if !staged {
			op.call.Store("NodeStageVolume")
			if err := m.stageBlock(ctx, d, r, staging); err != nil {
				return Mounted{}, fmt.Errorf("MapVolume.SetUpDevice failed for volume %q: %w", r.specName, err)
			}
			m.mu.Lock()
			m.staged[unique] = true
			m.mu.Unlock()
		}
	}
	op.call.Store("NodePublishVolume")
	dir := blockPublishDir(m.cfg.RootDir, r.specName)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return Mounted{}, fmt.Errorf("create block publish directory: %w", err)
	}
	target := filepath.Join(dir, string(r.pod.UID))
	secrets, err := m.secrets(ctx, r.publishRef)
	if err != nil {
		return Mounted{}, err
	}
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	_, err = d.node.NodePublishVolume(callCtx, &csipb.NodePublishVolumeRequest{
		VolumeId: r.handle, PublishContext: r.publishContext, StagingTargetPath: staging, TargetPath: target,
		VolumeCapability: r.capability(d, nil), Readonly: r.readOnly, Secrets: secrets, VolumeContext: r.attrs,
	})
	if err != nil {
		return Mounted{}, fmt.Errorf("MapVolume.MapPodDevice failed for volume %q: %w", r.specName, err)
	}
	link := podDeviceLink(m.cfg.RootDir, r.pod.UID, r.specName)
	if err := os.MkdirAll(filepath.Dir(link), 0o750); err != nil {
		return Mounted{}, fmt.Errorf("create pod device directory: %w", err)
	}
	if cur, err := os.Readlink(link); err != nil || cur != target {
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return Mounted{}, fmt.Errorf("link pod device: %w", err)
		}
	}
	return Mounted{Path: target, Block: true}, nil
}

// stageBlock calls NodeStageVolume for a block volume, in the staging
// directory the kubelet makes for it.
func (m *Manager) stageBlock(ctx context.Context, d *driver, r *request, staging string) error {
	secrets, err := m.secrets(ctx, r.stageRef)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return fmt.Errorf("create staging directory: %w", err)
	}
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	_, err = d.node.NodeStageVolume(callCtx, &csipb.NodeStageVolumeRequest{
		VolumeId: r.handle, PublishContext: r.publishContext, StagingTargetPath: staging,
		VolumeCapability: r.capability(d, nil), Secrets: secrets, VolumeContext: r.stageAttrs,
	})
	return err
}

// tearDownBlock unpublishes a pod's block volume and unstages it when no
// other pod's device is published. handled is false when the pod has no
// such block volume.
func (m *Manager) tearDownBlock(ctx context.Context, podUID types.UID, specName string) (handled bool, err error) {
	link := podDeviceLink(m.cfg.RootDir, podUID, specName)
	target := filepath.Join(blockPublishDir(m.cfg.RootDir, specName), string(podUID))
	_, linkErr := os.Lstat(link)
	_, targetErr := os.Lstat(target)
	if errors.Is(linkErr, fs.ErrNotExist) && errors.Is(targetErr, fs.ErrNotExist) {
		return false, nil
	}
	data, err := readVolData(blockDataDir(m.cfg.RootDir, specName))
	if err != nil {
		return true, fmt.Errorf("block volume %q: %w", specName, err)
	}
	name, handle := data[keyDriverName], data[keyVolumeHandle]
	d, err := m.registered(name)
	if err != nil {
		return true, fmt.Errorf("volume %q: %w", specName, err)
	}
	unlock := m.volLocks.lock(string(UniqueName(name, handle)))
	defer unlock()
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	if _, err := d.node.NodeUnpublishVolume(callCtx, &csipb.NodeUnpublishVolumeRequest{VolumeId: handle, TargetPath: target}); err != nil {
		return true, fmt.Errorf("UnmapVolume.UnmapPodDevice failed for volume %q: %w", specName, err)
	}
	for _, p := range []string{target, link} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return true, fmt.Errorf("UnmapVolume.UnmapPodDevice failed for volume %q: %w", specName, err)
		}
	}
	m.forget(podKey(podUID, specName))
	others, err := os.ReadDir(blockPublishDir(m.cfg.RootDir, specName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, fmt.Errorf("list block volume users: %w", err)
	}
	if len(others) > 0 {
		return true, nil
	}
	return true, m.unstageBlock(ctx, d, specName, handle)
}

// unstageBlock calls NodeUnstageVolume for a block volume no pod uses and
// removes its directories.
func (m *Manager) unstageBlock(ctx context.Context, d *driver, specName, handle string) error {
	staging := blockStagingPath(m.cfg.RootDir, specName)
	if _, err := os.Stat(staging); err == nil && d.has(csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME) {
		callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
		defer cancel()
		if _, err := d.node.NodeUnstageVolume(callCtx, &csipb.NodeUnstageVolumeRequest{VolumeId: handle, StagingTargetPath: staging}); err != nil {
			return fmt.Errorf("UnmapVolume.TearDownDevice failed for volume %q: %w", specName, err)
		}
	}
	for _, p := range []string{staging, blockPublishDir(m.cfg.RootDir, specName)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("UnmapVolume.TearDownDevice failed for volume %q: %w", specName, err)
		}
	}
	dataDir := blockDataDir(m.cfg.RootDir, specName)
	for _, p := range []string{filepath.Join(dataDir, volDataFile), dataDir, filepath.Dir(dataDir)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove block volume directory: %w", err)
		}
	}
	// The parents go when empty; another volume may be using them.
	for _, p := range []string{filepath.Dir(staging), filepath.Dir(blockPublishDir(m.cfg.RootDir, specName))} {
		_ = os.Remove(p)
	}
	m.mu.Lock()
	delete(m.staged, string(UniqueName(d.name, handle)))
	delete(m.attached, string(UniqueName(d.name, handle)))
	m.mu.Unlock()
	klog.FromContext(ctx).V(2).Info("Unstaged CSI block volume", "volume", specName)
	return nil
}
