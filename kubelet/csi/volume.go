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
	// Inline is the pod volume's CSI source for an inline ephemeral volume;
	// nil for a PV.
	Inline *v1.CSIVolumeSource
	// ReadOnly says the pod mounts the volume read-only (the claim's
	// readOnly, or the inline source's).
	ReadOnly bool
}
