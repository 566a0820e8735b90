package cri

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
