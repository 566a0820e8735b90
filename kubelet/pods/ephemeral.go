package pods

import (
	"sort"

	"github.com/berthnode/berth/kubelet/podruntime"
	v1 "k8s.io/api/core/v1"
)

// Ephemeral containers are what `kubectl debug` adds to a running pod
// through the pods/ephemeralcontainers subresource. As under the kubelet,
// each one runs once: it is started in the pod's sandbox when the runtime
// holds no instance of it, and never again, whatever its exit. Its instance
// carries the same labels as any container, so a restarted berth finds it
// and leaves it be.

// ephemeralStatuses are the statuses of the pod's ephemeral containers,
// sorted by name as the kubelet's are. They never count as started or ready:
// no probe runs on them, and they take no part in the pod's readiness.
func ephemeralStatuses(in statusInput, podInit bool) []v1.ContainerStatus {
	list := make([]v1.Container, 0, len(in.Pod.Spec.EphemeralContainers))
	for i := range in.Pod.Spec.EphemeralContainers {
		list = append(list, *podruntime.EphemeralSpec(&in.Pod.Spec.EphemeralContainers[i]))
	}
	out := containerStatuses(in, list, false, podInit)
	for i := range out {
		out[i].Started, out[i].Ready = nil, false
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
