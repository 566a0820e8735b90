package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// ErrInProgress is the error of SetUp or TearDown while a driver call for
// the same volume of the same pod is still running. It is retriable.
var ErrInProgress = errors.New("still in progress")

// operation is a stage-and-publish (or expansion) of one pod volume,
// running in its own goroutine so that a driver that hangs holds neither a
// pod worker nor the pod's other volumes.
type operation struct {
	done chan struct{}
	// call names the driver call running now, for the in-progress error.
	call    atomic.Value
	mounted Mounted
	err     error
}

// inUseVolume is a CSI persistent volume SetUp was asked for.
type inUseVolume struct {
	driver, handle string
	// at is when SetUp was last asked for it.
	at time.Time
}

// inUseTTL is how long a volume SetUp was asked for counts as in use
// without SetUp being asked again or anything on disk: a pod that waits
// for its volume retries far more often, and one deleted before anything
// reached the disk gets no TearDown to forget it.
const inUseTTL = 5 * time.Minute

// podKey names a pod's volume in the Manager's maps.
func podKey(podUID types.UID, specName string) string { return string(podUID) + "/" + specName }

// SetUp stages the volume on the node (once per volume, when the driver
// has STAGE_UNSTAGE_VOLUME) and publishes it for pod, at the kubelet's
// paths. It is idempotent and is called on every pod sync; it also expands
// the file system online when vol.PVC asks. A driver call that does not
// answer within Config.SetUpWait keeps running, and SetUp returns an error
// wrapping ErrInProgress; a later SetUp returns its result.
func (m *Manager) SetUp(ctx context.Context, pod *v1.Pod, vol Volume) (Mounted, error) {
	logger := klog.FromContext(ctx).WithValues("volume", vol.SpecName)
	ctx = klog.NewContext(ctx, logger)
	key := podKey(pod.UID, vol.SpecName)
	if op := m.operation(key); op != nil {
		return m.await(ctx, key, vol.SpecName, op)
	}
	if p, ok := m.publishedAs(key); ok && !p.republish && !resizePending(vol.PVC) {
		return p.mounted, nil
	}
	name, err := driverName(vol)
	if err != nil {
		return Mounted{}, err
	}
	d, err := m.registered(name)
	if err != nil {
		return Mounted{}, fmt.Errorf("volume %q: %w", vol.SpecName, err)
	}
	obj, err := m.driverObject(ctx, name)
	if err != nil {
		return Mounted{}, fmt.Errorf("volume %q: %w", vol.SpecName, err)
	}
	r, err := resolve(pod, vol, obj)
	if err != nil {
		return Mounted{}, err
	}
	if r.mode == storagev1.VolumeLifecyclePersistent {
		m.mu.Lock()
		_, known := m.inUse[key]
		m.inUse[key] = inUseVolume{driver: r.driver, handle: r.handle, at: m.cfg.Clock.Now()}
		m.mu.Unlock()
		if !known {
			m.inUseChanged()
		}
		if attachRequired(obj) {
			if r.publishContext, err = m.attachment(ctx, r); err != nil {
				return Mounted{}, fmt.Errorf("volume %q: %w", vol.SpecName, err)
			}
		}
	}
	op := &operation{done: make(chan struct{})}
	m.mu.Lock()
	m.ops[key] = op
	m.mu.Unlock()
	// The operation outlives this call when the driver is slow; it keeps
	// the logger but not the caller's cancellation.
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*m.cfg.CallTimeout)
	go func() {
		defer cancel()
		defer close(op.done)
		op.mounted, op.err = m.mount(opCtx, d, r, vol, op)
		if op.err == nil {
			m.mu.Lock()
			m.published[key] = published{mounted: op.mounted, republish: r.republish}
			m.mu.Unlock()
			m.rememberStatsTarget(key, pod, vol, r, op.mounted.Path)
		}
	}()
	return m.await(ctx, key, vol.SpecName, op)
}

// inUseChanged tells the node status that VolumesInUse changed.
func (m *Manager) inUseChanged() {
	if m.cfg.InUseChanged != nil {
		m.cfg.InUseChanged()
	}
}

// driverName is the CSI driver of vol.
func driverName(vol Volume) (string, error) {
	switch {
	case vol.PV != nil && vol.PV.Spec.CSI != nil:
		return vol.PV.Spec.CSI.Driver, nil
	case vol.Inline != nil:
		return vol.Inline.Driver, nil
	}
	return "", fmt.Errorf("volume %q: neither a CSI PersistentVolume nor a CSI inline volume", vol.SpecName)
}

// published is a pod volume published since berth started.
type published struct {
	mounted Mounted
	// republish tells that the CSIDriver wants NodePublishVolume on every
	// SetUp (requiresRepublish), as the kubelet does at each pod sync.
	republish bool
}

// publishedAs returns how the volume on key was published since berth
// started.
func (m *Manager) publishedAs(key string) (published, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.published[key]
	return p, ok
}

// operation returns the operation on key, nil when none.
func (m *Manager) operation(key string) *operation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops[key]
}

// await waits up to SetUpWait for op and returns its result, forgetting a
// finished operation; or returns an error wrapping ErrInProgress.
func (m *Manager) await(ctx context.Context, key, specName string, op *operation) (Mounted, error) {
	select {
	case <-op.done:
	case <-m.cfg.Clock.After(m.cfg.SetUpWait):
		call, _ := op.call.Load().(string)
		return Mounted{}, fmt.Errorf("volume %q: %s %w", specName, call, ErrInProgress)
	case <-ctx.Done():
		return Mounted{}, fmt.Errorf("volume %q: %w", specName, ctx.Err())
	}
	m.mu.Lock()
	if m.ops[key] == op {
		delete(m.ops, key)
	}
	m.mu.Unlock()
	return op.mounted, op.err
}

// mount stages (when the driver stages) and publishes r, then expands the
// file system when the claim asks.
func (m *Manager) mount(ctx context.Context, d *driver, r *request, vol Volume, op *operation) (Mounted, error) {
	unlock := m.volLocks.lock(string(UniqueName(r.driver, r.handle)))
	defer unlock()
	var fsGroup *int64
	if sc := r.pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	if r.block {
		return m.mountBlock(ctx, d, r, op)
	}
	var driverGroup *int64
	if d.has(csipb.NodeServiceCapability_RPC_VOLUME_MOUNT_GROUP) {
		driverGroup = fsGroup
	}
	staging := ""
	if r.mode == storagev1.VolumeLifecyclePersistent && d.has(csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME) {
		staging = stagingPath(m.cfg.RootDir, r.driver, r.handle)
		unique := string(UniqueName(r.driver, r.handle))
		m.mu.Lock()
		staged := m.staged[unique]
		m.mu.Unlock()
		if !staged {
			op.call.Store("NodeStageVolume")
			if err := m.stage(ctx, d, r, staging, driverGroup); err != nil {
				return Mounted{}, fmt.Errorf("MountVolume.MountDevice failed for volume %q: %w", r.specName, err)
			}
			m.mu.Lock()
			m.staged[unique] = true
			m.mu.Unlock()
		}
	}
	op.call.Store("NodePublishVolume")
	target := publishPath(m.cfg.RootDir, r.pod.UID, r.specName)
	if err := m.publish(ctx, d, r, staging, target, driverGroup); err != nil {
		return Mounted{}, fmt.Errorf("MountVolume.SetUp failed for volume %q: %w", r.specName, err)
	}
	if vol.PVC != nil && r.pv != nil {
		op.call.Store("NodeExpandVolume")
		if err := m.expand(ctx, d, r, vol.PVC, staging, target); err != nil {
			return Mounted{}, fmt.Errorf("MountVolume.NodeExpandVolume failed for volume %q: %w", r.specName, err)
		}
	}
	return Mounted{Path: target, ApplyFSGroup: driverGroup == nil && r.applyFSGroup(fsGroup)}, nil
}

// stage makes the staging directory, records vol_data.json next to it and
// calls NodeStageVolume. It runs once per volume since berth started: the
// call is idempotent, and after a restart berth does not know what the
// driver staged.
func (m *Manager) stage(ctx context.Context, d *driver, r *request, staging string, fsGroup *int64) error {
	secrets, err := m.secrets(ctx, r.stageRef)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return fmt.Errorf("create staging directory: %w", err)
	}
	data := volData{keyVolumeHandle: r.handle, keyDriverName: r.driver}
	if err := writeVolData(filepath.Dir(staging), data); err != nil {
		return err
	}
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	_, err = d.node.NodeStageVolume(callCtx, &csipb.NodeStageVolumeRequest{
		VolumeId:          r.handle,
		PublishContext:    r.publishContext,
		StagingTargetPath: staging,
		VolumeCapability:  r.capability(d, fsGroup),
		Secrets:           secrets,
		VolumeContext:     r.stageAttrs,
	})
	if err != nil {
		if finalError(err) {
			_ = removeMountDir(staging)
		}
		return err
	}
	return nil
}

// publish records vol_data.json in the pod's volume directory and calls
// NodePublishVolume for target.
func (m *Manager) publish(ctx context.Context, d *driver, r *request, staging, target string, fsGroup *int64) error {
	secrets, err := m.secrets(ctx, r.publishRef)
	if err != nil {
		return err
	}
	tokens, err := m.tokens(ctx, r)
	if err != nil {
		return err
	}
	attrs := r.attrs
	if tokens != nil {
		if r.tokensInSecrets {
			maps.Copy(secrets, tokens)
		} else {
			attrs = maps.Clone(r.attrs)
			if attrs == nil {
				attrs = map[string]string{}
			}
			maps.Copy(attrs, tokens)
		}
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create volume directory: %w", err)
	}
	if err := writeVolData(dir, publishData(r.specName, r.handle, r.driver, m.cfg.NodeName, r.mode)); err != nil {
		return err
	}
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	_, err = d.node.NodePublishVolume(callCtx, &csipb.NodePublishVolumeRequest{
		VolumeId:          r.handle,
		PublishContext:    r.publishContext,
		StagingTargetPath: staging,
		TargetPath:        target,
		VolumeCapability:  r.capability(d, fsGroup),
		Readonly:          r.readOnly,
		Secrets:           secrets,
		VolumeContext:     attrs,
	})
	if err != nil && finalError(err) {
		// vol_data.json stays: TearDown needs it to unstage a volume this
		// pod staged, and NodeUnpublishVolume of an unpublished target is a
		// no-op for the driver.
		_ = os.Remove(target)
	}
	return err
}

// removeMountDir removes a staging or mount directory (which must no longer
// be mounted, or this fails) and the vol_data.json next to it, then their
// parent when empty.
func removeMountDir(dir string) error {
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	parent := filepath.Dir(dir)
	if err := os.Remove(filepath.Join(parent, volDataFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove volume data file: %w", err)
	}
	if err := os.Remove(parent); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", parent, err)
	}
	return nil
}
