package cri

import runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

// The labels and annotations the kubelet, and berth, put on the sandboxes
// and containers it creates through CRI. Other tools (crictl, log
// collectors) read them too, so their names are kubelet's.
const (
	// LabelPodName, LabelPodNamespace and LabelPodUID name the pod of a
	// sandbox or container.
	LabelPodName      = "io.kubernetes.pod.name"
	LabelPodNamespace = "io.kubernetes.pod.namespace"
	LabelPodUID       = "io.kubernetes.pod.uid"
	// LabelContainerName is the name of a container in its pod's spec.
	LabelContainerName = "io.kubernetes.container.name"
	// AnnotationRestartCount is the container's restart count.
	AnnotationRestartCount = "io.kubernetes.container.restartCount"
)

// ContainerStateName names a CRI container state as kubelet's
// container_state metric label does, and as people say it: "created",
// "running", "exited" or "unknown".
func ContainerStateName(s runtimeapi.ContainerState) string {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return "created"
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return "running"
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return "exited"
	}
	return "unknown"
}
