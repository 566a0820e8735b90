package csi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// request is what staging and publishing one volume for one pod needs,
// resolved from the pod, the PV or inline source, and the CSIDriver object.
type request struct {
	pod      *v1.Pod
	specName string
	driver   string
	handle   string
	mode     storagev1.VolumeLifecycleMode
	readOnly bool
	fsType   string
	// accessMode is the PV's first access mode (ReadWriteOnce for inline).
	accessMode   v1.PersistentVolumeAccessMode
	mountOptions []string
	// attrs is the volume context for NodePublishVolume (with pod info when
	// the CSIDriver asks); stageAttrs the one for NodeStageVolume.
	attrs      map[string]string
	stageAttrs map[string]string
	publishRef *v1.SecretReference
	stageRef   *v1.SecretReference
	// publishContext is the VolumeAttachment's attachment metadata.
	publishContext map[string]string
	fsGroupPolicy  storagev1.FSGroupPolicy
	// pv is the PersistentVolume, nil for inline volumes.
	pv *v1.PersistentVolume
	// block tells a volumeMode Block PV.
	block bool
	// tokenRequests are the CSIDriver's service account tokens, passed in
	// the secrets instead of the volume context with tokensInSecrets.
	tokenRequests   []storagev1.TokenRequest
	tokensInSecrets bool
	// republish tells that the CSIDriver asks for NodePublishVolume again
	// on every pod sync (requiresRepublish), to renew the tokens.
	republish bool
}

// resolve builds the request for vol of pod. obj is the driver's CSIDriver
// object, nil when there is none.
func resolve(pod *v1.Pod, vol Volume, obj *storagev1.CSIDriver) (*request, error) {
	r := &request{pod: pod, specName: vol.SpecName, readOnly: vol.ReadOnly, accessMode: v1.ReadWriteOnce}
	switch {
	case vol.PV != nil && vol.PV.Spec.CSI != nil:
		src := vol.PV.Spec.CSI
		r.pv = vol.PV
		r.driver, r.handle, r.mode = src.Driver, src.VolumeHandle, storagev1.VolumeLifecyclePersistent
		r.fsType = src.FSType
		r.attrs, r.stageAttrs = maps.Clone(src.VolumeAttributes), src.VolumeAttributes
		r.publishRef, r.stageRef = src.NodePublishSecretRef, src.NodeStageSecretRef
		if len(vol.PV.Spec.AccessModes) > 0 {
			r.accessMode = vol.PV.Spec.AccessModes[0]
		}
		r.mountOptions = vol.PV.Spec.MountOptions
		// src.ReadOnly is for ControllerPublishVolume; the node publishes
		// read-only as the pod's claim says, as the kubelet does.
		r.block = vol.PV.Spec.VolumeMode != nil && *vol.PV.Spec.VolumeMode == v1.PersistentVolumeBlock
	case vol.Inline != nil:
		src := vol.Inline
		r.driver, r.handle, r.mode = src.Driver, inlineHandle(pod.UID, vol.SpecName), storagev1.VolumeLifecycleEphemeral
		if src.FSType != nil {
			r.fsType = *src.FSType
		}
		if src.ReadOnly != nil {
			r.readOnly = *src.ReadOnly
		}
		r.attrs = maps.Clone(src.VolumeAttributes)
		if src.NodePublishSecretRef != nil {
			r.publishRef = &v1.SecretReference{Name: src.NodePublishSecretRef.Name, Namespace: pod.Namespace}
		}
	default:
		return nil, fmt.Errorf("volume %q: neither a CSI PersistentVolume nor a CSI inline volume", vol.SpecName)
	}
	if r.driver == "" || r.handle == "" {
		return nil, fmt.Errorf("volume %q: CSI driver name or volume handle is empty", vol.SpecName)
	}
	if err := supportsMode(obj, r.driver, r.mode); err != nil {
		return nil, err
	}
	r.fsGroupPolicy = storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy
	if obj != nil && obj.Spec.FSGroupPolicy != nil && *obj.Spec.FSGroupPolicy != "" {
		r.fsGroupPolicy = *obj.Spec.FSGroupPolicy
	}
	if obj != nil {
		r.tokenRequests = obj.Spec.TokenRequests
		r.tokensInSecrets = obj.Spec.ServiceAccountTokenInSecrets != nil && *obj.Spec.ServiceAccountTokenInSecrets
		r.republish = obj.Spec.RequiresRepublish != nil && *obj.Spec.RequiresRepublish
	}
	if obj != nil && obj.Spec.PodInfoOnMount != nil && *obj.Spec.PodInfoOnMount {
		if r.attrs == nil {
			r.attrs = map[string]string{}
		}
		maps.Copy(r.attrs, podInfo(pod, r.mode))
	}
	return r, nil
}

// supportsMode checks the CSIDriver's volumeLifecycleModes, with the
// kubelet's messages. Without a CSIDriver object only persistent volumes
// are allowed.
func supportsMode(obj *storagev1.CSIDriver, name string, mode storagev1.VolumeLifecycleMode) error {
	switch {
	case obj == nil && mode == storagev1.VolumeLifecyclePersistent:
		return nil
	case obj == nil:
		return fmt.Errorf("volume mode %q not supported by driver %s (no CSIDriver object)", mode, name)
	case slices.Contains(obj.Spec.VolumeLifecycleModes, mode):
		return nil
	case len(obj.Spec.VolumeLifecycleModes) == 0 && mode == storagev1.VolumeLifecyclePersistent:
		return nil
	default:
		return fmt.Errorf("volume mode %q not supported by driver %s (only supports %q)", mode, name, obj.Spec.VolumeLifecycleModes)
	}
}

// attachRequired tells whether the driver's volumes need a VolumeAttachment:
// unless its CSIDriver object says attachRequired: false.
func attachRequired(obj *storagev1.CSIDriver) bool {
	return obj == nil || obj.Spec.AttachRequired == nil || *obj.Spec.AttachRequired
}

// podInfo is the volume context the kubelet adds when the CSIDriver asks
// for podInfoOnMount.
func podInfo(pod *v1.Pod, mode storagev1.VolumeLifecycleMode) map[string]string {
	return map[string]string{
		"csi.storage.k8s.io/pod.name":            pod.Name,
		"csi.storage.k8s.io/pod.namespace":       pod.Namespace,
		"csi.storage.k8s.io/pod.uid":             string(pod.UID),
		"csi.storage.k8s.io/serviceAccount.name": pod.Spec.ServiceAccountName,
		"csi.storage.k8s.io/ephemeral":           strconv.FormatBool(mode == storagev1.VolumeLifecycleEphemeral),
	}
}

// capability is the volume capability of r for driver d, with the access
// mode mapped as the kubelet maps it.
func (r *request) capability(d *driver, fsGroup *int64) *csipb.VolumeCapability {
	c := &csipb.VolumeCapability{
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: accessMode(r.accessMode, d.has(csipb.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER))},
	}
	if r.block {
		c.AccessType = &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}
		return c
	}
	mount := &csipb.VolumeCapability_MountVolume{FsType: r.fsType, MountFlags: r.mountOptions}
	if fsGroup != nil {
		mount.VolumeMountGroup = strconv.FormatInt(*fsGroup, 10)
	}
	c.AccessType = &csipb.VolumeCapability_Mount{Mount: mount}
	return c
}

// accessMode maps a Kubernetes access mode to CSI's. Drivers with
// SINGLE_NODE_MULTI_WRITER get the finer modes.
func accessMode(am v1.PersistentVolumeAccessMode, multiWriter bool) csipb.VolumeCapability_AccessMode_Mode {
	switch am {
	case v1.ReadWriteOnce:
		if multiWriter {
			return csipb.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER
		}
		return csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	case v1.ReadOnlyMany:
		return csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY
	case v1.ReadWriteMany:
		return csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
	case v1.ReadWriteOncePod:
		if multiWriter {
			return csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
		}
		return csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	}
	return csipb.VolumeCapability_AccessMode_UNKNOWN
}

// applyFSGroup tells whether the node should give the pod's fsGroup to the
// volume's files, by the kubelet's rules for the CSIDriver's fsGroupPolicy.
func (r *request) applyFSGroup(fsGroup *int64) bool {
	if r.block || fsGroup == nil || r.fsGroupPolicy == storagev1.NoneFSGroupPolicy || r.readOnly {
		return false
	}
	if r.fsGroupPolicy == storagev1.FileFSGroupPolicy {
		return true
	}
	if r.fsType == "" {
		return false
	}
	if r.pv == nil {
		return true
	}
	return slices.Contains(r.pv.Spec.AccessModes, v1.ReadWriteOnce) || slices.Contains(r.pv.Spec.AccessModes, v1.ReadWriteOncePod)
}

// secrets reads a secret's data as CSI secrets.
func (m *Manager) secrets(ctx context.Context, ref *v1.SecretReference) (map[string]string, error) {
	out := map[string]string{}
	if ref == nil {
		return out, nil
	}
	s, err := m.cfg.Client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1GetOptions)
	if err != nil {
		return nil, fmt.Errorf("fetching secret %s/%s failed: %w", ref.Namespace, ref.Name, err)
	}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out, nil
}

// finalError tells whether a CSI call's error means the operation ended and
// left nothing behind, as the kubelet decides: any error but a timeout,
// cancellation, unavailability, exhaustion or abort.
func finalError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		return false
	}
	return true
}
