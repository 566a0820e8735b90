package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/klog/v2"
)

// resizePending tells whether the claim waits for the node to expand its
// file system: the resize controller set its storage's allocated resource
// status to NodeResizePending (or a node started and did not finish).
func resizePending(pvc *v1.PersistentVolumeClaim) bool {
	if pvc == nil {
		return false
	}
	switch pvc.Status.AllocatedResourceStatuses[v1.ResourceStorage] {
	case v1.PersistentVolumeClaimNodeResizePending, v1.PersistentVolumeClaimNodeResizeInProgress:
		return true
	}
	return false
}

// expand grows the published volume's file system to the PV's capacity when
// the claim asks, and records the result in the claim's status the way the
// kubelet does: NodeResizeInProgress while the driver works, then the new
// capacity with the resize status and the FileSystemResizePending condition
// gone. A driver without EXPAND_VOLUME needs no node step.
func (m *Manager) expand(ctx context.Context, d *driver, r *request, pvc *v1.PersistentVolumeClaim, staging, target string) error {
	if !resizePending(pvc) {
		return nil
	}
	size, ok := r.pv.Spec.Capacity[v1.ResourceStorage]
	if !ok {
		return fmt.Errorf("PersistentVolume %s has no storage capacity", r.pv.Name)
	}
	logger := klog.FromContext(ctx).WithValues("pvc", klog.KObj(pvc), "size", size.String())
	if d.has(csipb.NodeServiceCapability_RPC_EXPAND_VOLUME) {
		inProgress := pvc.DeepCopy()
		inProgress.Status.AllocatedResourceStatuses[v1.ResourceStorage] = v1.PersistentVolumeClaimNodeResizeInProgress
		var err error
		if pvc, err = m.patchClaimStatus(ctx, pvc, inProgress); err != nil {
			return err
		}
		callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
		defer cancel()
		_, err = d.node.NodeExpandVolume(callCtx, &csipb.NodeExpandVolumeRequest{
			VolumeId:          r.handle,
			VolumePath:        target,
			CapacityRange:     &csipb.CapacityRange{RequiredBytes: size.Value()},
			StagingTargetPath: staging,
			VolumeCapability:  r.capability(d, nil),
		})
		if err != nil {
			return err
		}
	}
	done := pvc.DeepCopy()
	if done.Status.Capacity == nil {
		done.Status.Capacity = v1.ResourceList{}
	}
	done.Status.Capacity[v1.ResourceStorage] = size
	delete(done.Status.AllocatedResourceStatuses, v1.ResourceStorage)
	done.Status.Conditions = slices.DeleteFunc(done.Status.Conditions, func(c v1.PersistentVolumeClaimCondition) bool {
		return c.Type == v1.PersistentVolumeClaimFileSystemResizePending || c.Type == v1.PersistentVolumeClaimNodeResizeError
	})
	if _, err := m.patchClaimStatus(ctx, pvc, done); err != nil {
		return err
	}
	msg := fmt.Sprintf("MountVolume.NodeExpandVolume succeeded for volume %q %s", r.specName, m.cfg.NodeName)
	if m.cfg.Recorder != nil {
		m.cfg.Recorder.Event(r.pod, v1.EventTypeNormal, "FileSystemResizeSuccessful", msg)
		m.cfg.Recorder.Event(pvc, v1.EventTypeNormal, "FileSystemResizeSuccessful", msg)
	}
	logger.Info("Expanded the volume's file system")
	return nil
}

// patchClaimStatus patches the claim's status from old to updated.
func (m *Manager) patchClaimStatus(ctx context.Context, old, updated *v1.PersistentVolumeClaim) (*v1.PersistentVolumeClaim, error) {
	oldJSON, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	newJSON, err := json.Marshal(updated)
	if err != nil {
		return nil, err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, v1.PersistentVolumeClaim{})
	if err != nil {
		return nil, fmt.Errorf("claim patch: %w", err)
	}
	pvc, err := m.cfg.Client.CoreV1().PersistentVolumeClaims(old.Namespace).Patch(ctx, old.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return nil, fmt.Errorf("patch status of claim %s/%s: %w", old.Namespace, old.Name, err)
	}
	return pvc, nil
}
