package volume

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// VolumeError is a failure to set up one volume of a pod. Setup returns
// one per failed volume, joined with errors.Join.
type VolumeError struct {
	// Volume is the name of the volume in the pod spec.
	Volume string
	// Err is the cause.
	Err error
}

// Error reads `volume "name": cause`.
func (e *VolumeError) Error() string {
	return fmt.Sprintf("volume %q: %v", e.Volume, e.Err)
}

// Unwrap returns the cause.
func (e *VolumeError) Unwrap() error { return e.Err }

// UnsupportedError is the cause of a VolumeError for a volume source this
// node does not implement, such as nfs or gitRepo, or a PersistentVolume
// kind it does not implement, such as nfs (persistentvolume "pv1").
type UnsupportedError struct {
	// Type is the volume source as named in the pod spec, such as "nfs".
	Type string
}

// Error reads "unsupported volume type <type> on this node".
func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("unsupported volume type %s on this node", e.Type)
}

// objectError is a failure to read the API object a volume projects. It
// reads "configmap "app" not found" rather than repeating the API's own
// wording, and unwraps to the API error for apierrors.IsNotFound and
// friends.
type objectError struct {
	kind string
	name string
	err  error
}

func (e *objectError) Error() string {
	if apierrors.IsNotFound(e.err) {
		return fmt.Sprintf("%s %q not found", e.kind, e.name)
	}
	return fmt.Sprintf("get %s %q: %v", e.kind, e.name, e.err)
}

func (e *objectError) Unwrap() error { return e.err }
