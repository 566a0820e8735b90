package podruntime

import (
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// Grace periods of container stops.
const (
	// MinGracePeriod is the least time a container gets to stop, as under
	// the kubelet.
	MinGracePeriod = 2
	// defaultGracePeriod applies when a pod sets none.
	defaultGracePeriod = 30
)

// SpecGracePeriod is the pod's termination grace period in seconds.
func SpecGracePeriod(pod *v1.Pod) int64 {
	g := int64(defaultGracePeriod)
	if pod != nil && pod.Spec.TerminationGracePeriodSeconds != nil {
		g = *pod.Spec.TerminationGracePeriodSeconds
	}
	return max(g, MinGracePeriod)
}

// DeletionGracePeriod is the grace period of a pod being deleted.
func DeletionGracePeriod(pod *v1.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return max(*pod.DeletionGracePeriodSeconds, MinGracePeriod)
	}
	return SpecGracePeriod(pod)
}

func isSidecarName(pod *v1.Pod, name string) bool {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return IsSidecar(&pod.Spec.InitContainers[i])
		}
	}
	return false
}

// containerLogDir is the directory of a container's log files.
func containerLogDir(sandboxLogDir, name string) string {
	return filepath.Join(sandboxLogDir, name)
}
