package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"
)

// errNotAttached is the error of a volume whose VolumeAttachment is not
// attached yet; SetUp is retried until the external attacher attaches it.
var errNotAttached = errors.New("not attached yet")

// attachment checks, without waiting, that the attach/detach controller
// and the driver's external attacher attached r's volume to this node: the
// Node's volumesAttached lists it and its VolumeAttachment (named as the
// controller names it) says attached. It returns the attachment metadata,
// which becomes the publish context.
func (m *Manager) attachment(ctx context.Context, r *request) (map[string]string, error) {
	unique := UniqueName(r.driver, r.handle)
	m.mu.Lock()
	pc, ok := m.attached[string(unique)]
	m.mu.Unlock()
	if ok {
		return pc, nil
	}
	node, err := m.node(ctx)
	if err != nil {
		return nil, err
	}
	// As the kubelet: mount an attachable volume only once the node status
	// says it is in use, so that the attach/detach controller does not
	// detach it meanwhile.
	if !slices.Contains(node.Status.VolumesInUse, unique) {
		return nil, fmt.Errorf("volume %s has not been added to the list of VolumesInUse in the node's volume status: %w", unique, errNotAttached)
	}
	if !slices.ContainsFunc(node.Status.VolumesAttached, func(a v1.AttachedVolume) bool { return a.Name == unique }) {
		return nil, fmt.Errorf("volume %s is not attached according to the node status: %w", unique, errNotAttached)
	}
	name := AttachmentName(r.handle, r.driver, m.cfg.NodeName)
	va, err := m.cfg.Client.StorageV1().VolumeAttachments().Get(ctx, name, metav1GetOptions)
	if err != nil {
		return nil, fmt.Errorf("volume %s has GET error for volume attachment %s: %w", r.handle, name, err)
	}
	switch {
	case va.DeletionTimestamp != nil:
		return nil, fmt.Errorf("volume attachment %s is being deleted: %w", name, errNotAttached)
	case va.Status.Attached:
	case va.Status.AttachError != nil:
		return nil, fmt.Errorf("volume attachment %s: %s: %w", name, va.Status.AttachError.Message, errNotAttached)
	default:
		return nil, fmt.Errorf("volume %s is not attached for volume attachment %s: %w", r.handle, name, errNotAttached)
	}
	pc = maps.Clone(va.Status.AttachmentMetadata)
	m.mu.Lock()
	m.attached[string(unique)] = pc
	m.mu.Unlock()
	return pc, nil
}
