package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berthnode/berth/kubelet/csi"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/storage/ephemeral"
	"k8s.io/klog/v2"
)

// pluginLocalVolume is the kubelet's directory name of local
// PersistentVolumes below a pod's volumes directory.
const pluginLocalVolume = "kubernetes.io~local-volume"

// pvcProtectionFinalizer keeps a claim in use from going away. A claim
// being deleted that still carries it waits for its pods, so they may keep
// using it, as with the kubelet.
const pvcProtectionFinalizer = "kubernetes.io/pvc-protection"

// Causes of a claim a pod must wait for, wrapped in errors that name the
// claim: `persistentvolumeclaim "data" is not bound`.
var (
	// ErrClaimNotBound is a claim not bound to a PersistentVolume yet.
	ErrClaimNotBound = errors.New("is not bound")
	// ErrClaimDeleting is a claim being deleted, no longer protected.
	ErrClaimDeleting = errors.New("is being deleted")
)

// claimVolume sets up a volume backed by the claim claimName: a
// persistentVolumeClaim volume, or (forPod set) the claim a generic
// ephemeral volume's controller made for the pod.
func (s *podSetup) claimVolume(ctx context.Context, vol *v1.Volume, claimName string, readOnly, forPod bool) (string, error) {
	pvc, pv, err := s.boundClaim(ctx, claimName, forPod)
	if err != nil {
		return "", err
	}
	klog.FromContext(ctx).V(5).Info("Claim bound", "claim", klog.KObj(pvc), "pv", pv.Name)
	mode := v1.PersistentVolumeFilesystem
	if pv.Spec.VolumeMode != nil {
		mode = *pv.Spec.VolumeMode
	}
	if err := checkVolumeMode(s.pod, vol.Name, mode); err != nil {
		return "", err
	}
	src := &pv.Spec.PersistentVolumeSource
	switch {
	case src.Local != nil:
		return s.localVolume(ctx, vol.Name, pv, mode, readOnly)
	case src.HostPath != nil:
		if mode == v1.PersistentVolumeBlock {
			return "", &UnsupportedError{Type: fmt.Sprintf("hostPath with volumeMode Block (persistentvolume %q)", pv.Name)}
		}
		// As with the kubelet, a hostPath is given as it is: no mount,
		// no fsGroup.
		return setupHostPath(src.HostPath)
	case src.CSI != nil:
		return s.csiVolume(ctx, vol.Name, csi.Volume{SpecName: pv.Name, PV: pv, PVC: pvc, ReadOnly: readOnly})
	}
	kind := setField(src)
	if kind == "" {
		return "", fmt.Errorf("persistentvolume %q has no volume source", pv.Name)
	}
	return "", &UnsupportedError{Type: fmt.Sprintf("%s (persistentvolume %q)", kind, pv.Name)}
}

// boundClaim reads the claim and the PersistentVolume it is bound to, and
// checks that the two point at each other. The node's credentials may GET
// the claims and volumes of the node's pods, not list or watch them, so
// both are read on every Setup, as the kubelet reads them.
func (s *podSetup) boundClaim(ctx context.Context, name string, forPod bool) (*v1.PersistentVolumeClaim, *v1.PersistentVolume, error) {
	pvc, err := s.m.cfg.Client.CoreV1().PersistentVolumeClaims(s.pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, &objectError{kind: "persistentvolumeclaim", name: name, err: err}
	}
	if forPod {
		if err := ephemeral.VolumeIsForPod(s.pod, pvc); err != nil {
			return nil, nil, err
		}
	}
	if pvc.DeletionTimestamp != nil && !slices.Contains(pvc.Finalizers, pvcProtectionFinalizer) {
		return nil, nil, fmt.Errorf("persistentvolumeclaim %q %w", name, ErrClaimDeleting)
	}
	if pvc.Status.Phase != v1.ClaimBound {
		return nil, nil, fmt.Errorf("persistentvolumeclaim %q %w", name, ErrClaimNotBound)
	}
	if pvc.Spec.VolumeName == "" {
		return nil, nil, fmt.Errorf("persistentvolumeclaim %q %w: no spec.volumeName", name, ErrClaimNotBound)
	}
	pv, err := s.m.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return nil, nil, &objectError{kind: "persistentvolume", name: pvc.Spec.VolumeName, err: err}
	}
	ref := pv.Spec.ClaimRef
	if ref == nil {
		return nil, nil, fmt.Errorf("persistentvolume %q of persistentvolumeclaim %q is not bound to a claim yet", pv.Name, name)
	}
	if ref.UID != pvc.UID {
		return nil, nil, fmt.Errorf("persistentvolume %q is bound to claim %s/%s (uid %s), not to persistentvolumeclaim %q (uid %s)",
			pv.Name, ref.Namespace, ref.Name, ref.UID, name, pvc.UID)
	}
	return pvc, pv, nil
}

// checkVolumeMode refuses, with the kubelet's words, a block volume that a
// container mounts as a file system and a file system it asks for as a
// device.
func checkVolumeMode(pod *v1.Pod, name string, mode v1.PersistentVolumeMode) error {
	mounted, device := volumeUse(pod, name)
	if mounted && mode != v1.PersistentVolumeFilesystem {
		return fmt.Errorf("volume %s has volumeMode %s, but is specified in volumeMounts", name, mode)
	}
	if device && mode != v1.PersistentVolumeBlock {
		return fmt.Errorf("volume %s has volumeMode %s, but is specified in volumeDevices", name, mode)
	}
	return nil
}

// volumeUse reports whether any container of pod mounts the named volume,
// and whether any takes it as a device.
func volumeUse(pod *v1.Pod, name string) (mounted, device bool) {
	visit := func(mounts []v1.VolumeMount, devices []v1.VolumeDevice) {
		for _, m := range mounts {
			mounted = mounted || m.Name == name
		}
		for _, d := range devices {
			device = device || d.Name == name
		}
	}
	for _, c := range pod.Spec.InitContainers {
		visit(c.VolumeMounts, c.VolumeDevices)
	}
	for _, c := range pod.Spec.Containers {
		visit(c.VolumeMounts, c.VolumeDevices)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		visit(c.VolumeMounts, c.VolumeDevices)
	}
	return mounted, device
}

// localVolume bind-mounts a local PersistentVolume's directory into the
// pod's volume directory, as the kubelet does, or hands out its device
// for volumeMode Block. The PV's data stays where it is: Teardown
// unmounts the bind mount before it removes the pod's directories.
func (s *podSetup) localVolume(ctx context.Context, name string, pv *v1.PersistentVolume, mode v1.PersistentVolumeMode, readOnly bool) (string, error) {
	path := pv.Spec.Local.Path
	if !filepath.IsAbs(path) || slices.Contains(strings.Split(path, "/"), "..") {
		return "", fmt.Errorf("local persistentvolume %q: path %q must be absolute, without '..'", pv.Name, path)
	}
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("local persistentvolume %q: path %s does not exist on this node", pv.Name, path)
	}
	if err != nil {
		return "", fmt.Errorf("local persistentvolume %q: %w", pv.Name, err)
	}
	if mode == v1.PersistentVolumeBlock {
		if info.Mode().Type() != fs.ModeDevice {
			return "", fmt.Errorf("local persistentvolume %q has volumeMode Block but %s is %s", pv.Name, path, describeType(info.Mode().Type()))
		}
		return path, nil
	}
	if !info.IsDir() {
		return "", fmt.Errorf("local persistentvolume %q: %s is %s, want a Directory", pv.Name, path, describeType(info.Mode().Type()))
	}
	dir := s.m.volumeDir(s.pod.UID, pluginLocalVolume, pv.Name)
	if _, err := makeDir(dir, 0o750); err != nil {
		return "", err
	}
	_, mounted, err := s.m.cfg.Mounter.MountedAt(dir)
	if err != nil {
		return "", err
	}
	if !mounted {
		if err := s.m.cfg.Mounter.Bind(path, dir, readOnly); err != nil {
			return "", fmt.Errorf("local persistentvolume %q: %w", pv.Name, err)
		}
		klog.FromContext(ctx).V(3).Info("Mounted local volume", "pv", pv.Name, "path", path, "readOnly", readOnly)
	}
	if !readOnly {
		if err := s.ownOnce(ctx, name, dir); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// csiVolume publishes a CSI volume through the CSI node side.
func (s *podSetup) csiVolume(ctx context.Context, name string, vol csi.Volume) (string, error) {
	if s.m.cfg.CSI == nil {
		return "", &UnsupportedError{Type: "csi"}
	}
	mounted, err := s.m.cfg.CSI.SetUp(ctx, s.pod, vol)
	if err != nil {
		return "", err
	}
	if mounted.ApplyFSGroup && !mounted.Block && !vol.ReadOnly {
		if err := s.ownOnce(ctx, name, mounted.Path); err != nil {
			return "", err
		}
	}
	return mounted.Path, nil
}

// inlineCSI sets up a CSI inline ephemeral volume.
func (s *podSetup) inlineCSI(ctx context.Context, name string, src *v1.CSIVolumeSource) (string, error) {
	readOnly := src.ReadOnly != nil && *src.ReadOnly
	return s.csiVolume(ctx, name, csi.Volume{SpecName: name, Inline: src, ReadOnly: readOnly})
}
