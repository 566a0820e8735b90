package volume

import (
	"context"

	"github.com/berthnode/berth/kubelet/csi"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// pluginCSI is the kubelet's directory name of CSI volumes below a pod's
// volumes (and volumeDevices) directory.
const pluginCSI = "kubernetes.io~csi"

// CSI is the node side of CSI drivers, which package kubelet/csi
// implements: it publishes CSI volumes for pods and removes them again.
type CSI interface {
	// SetUp stages and publishes vol for pod and returns where containers
	// find it. It is idempotent: the Manager calls it on every Setup of
	// the pod.
	SetUp(ctx context.Context, pod *v1.Pod, vol csi.Volume) (csi.Mounted, error)
	// TearDown unpublishes the volume named specName of the pod with this
	// UID (and unstages it when no other pod uses it), from what SetUp
	// left on disk, so that it works after a restart and for pods no
	// longer known. It is idempotent: a volume already gone is no error.
	TearDown(ctx context.Context, podUID types.UID, specName string) error
}
