package csi

import v1 "k8s.io/api/core/v1"

// Volume is a CSI volume of a pod: a bound PersistentVolume with a CSI
// source, or a CSI inline ephemeral volume.
type Volume struct {
	// SpecName names the volume below the pod's volumes directory: the PV's
	// name for a claim, the pod volume's name for an inline volume.
	SpecName string
	// PV is the bound PersistentVolume; nil for an inline volume.
	PV *v1.PersistentVolume
	// PVC is the claim bound to PV, as last read; nil for an inline volume.
	// Its status tells whether the file system awaits an online resize.
	PVC *v1.PersistentVolumeClaim
	// Inline is the pod volume's CSI source for an inline ephemeral volume;
	// nil for a PV.
	Inline *v1.CSIVolumeSource
	// ReadOnly says the pod mounts the volume read-only (the claim's
	// readOnly, or the inline source's).
	ReadOnly bool
}

// Mounted is a CSI volume published for a pod.
type Mounted struct {
	// Path is the host path containers get: the published directory, or
	// for a block volume the published device file.
	Path string
	// Block tells that Path is a block device for the containers'
	// volumeDevices, not a directory for their volumeMounts.
	Block bool
	// ApplyFSGroup tells that the node, not the driver, gives the pod's
	// fsGroup to the volume's files (the CSIDriver's fsGroupPolicy allows it
	// and the driver does not take the group itself).
	ApplyFSGroup bool
}
