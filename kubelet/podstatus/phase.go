package podstatus

import (
	"github.com/berthnode/berth/kubelet/podruntime"
	v1 "k8s.io/api/core/v1"
)

// podPhase sums the container statuses up into the pod's phase, the way the
// kubelet does: Pending while initialization or a container start is
// outstanding, Running while a container runs, and once every container has
// stopped Succeeded or Failed when the pod will not restart any (terminal),
// Running when it will.
func podPhase(pod *v1.Pod, init, regular []v1.ContainerStatus, terminal, podInitialized bool) v1.PodPhase {
	var n phaseCounts
	n.countInit(pod.Spec.InitContainers, init)
	n.countRegular(pod.Spec.Containers, regular)
	if n.failedInit > 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
		return v1.PodFailed
	}
	switch {
	case n.pendingInit > 0, n.pendingSidecars > 0 && !podInitialized, n.waiting > 0:
		return v1.PodPending
	case n.running > 0 && n.unknown == 0:
		return v1.PodRunning
	case n.running == 0 && n.stopped > 0 && n.unknown == 0:
		return stoppedPhase(pod.Spec.RestartPolicy, n.stopped, n.succeeded, terminal)
	}
	return v1.PodPending
}

// phaseCounts counts containers by state for podPhase.
type phaseCounts struct {
	pendingInit, failedInit, pendingSidecars      int
	unknown, running, waiting, stopped, succeeded int
}

// countInit counts the init containers: regular ones towards
// initialization, sidecars like regular containers that may still be
// starting.
func (n *phaseCounts) countInit(spec []v1.Container, statuses []v1.ContainerStatus) {
	for i := range spec {
		c := &spec[i]
		st, ok := StatusByName(statuses, c.Name)
		if podruntime.IsSidecar(c) {
			switch {
			case !ok:
				n.unknown++
				n.pendingSidecars++
			case st.State.Running != nil:
				n.running++
				if st.Started == nil || !*st.Started {
					n.pendingSidecars++
				}
			case st.State.Waiting != nil && st.LastTerminationState.Terminated == nil:
				n.waiting++
				n.pendingSidecars++
			}
			continue
		}
		switch {
		case !ok, st.State.Running != nil:
			n.pendingInit++
		case st.State.Terminated != nil:
			if st.State.Terminated.ExitCode != 0 {
				n.failedInit++
			}
		case st.State.Waiting != nil && st.LastTerminationState.Terminated != nil:
			if st.LastTerminationState.Terminated.ExitCode != 0 {
				n.failedInit++
			}
		default:
			n.pendingInit++
		}
	}
}

// countRegular counts the regular containers.
func (n *phaseCounts) countRegular(spec []v1.Container, statuses []v1.ContainerStatus) {
	for _, c := range spec {
		st, ok := StatusByName(statuses, c.Name)
		switch {
		case !ok:
			n.unknown++
		case st.State.Running != nil:
			n.running++
		case st.State.Terminated != nil:
			n.stopped++
			if st.State.Terminated.ExitCode == 0 {
				n.succeeded++
			}
		case st.State.Waiting != nil && st.LastTerminationState.Terminated != nil:
			n.stopped++
		case st.State.Waiting != nil:
			n.waiting++
		default:
			n.unknown++
		}
	}
}

// stoppedPhase is the phase of a pod none of whose containers runs.
func stoppedPhase(policy v1.RestartPolicy, stopped, succeeded int, terminal bool) v1.PodPhase {
	switch {
	case terminal && stopped == succeeded:
		return v1.PodSucceeded
	case terminal:
		return v1.PodFailed
	case policy == v1.RestartPolicyAlways:
		// Every container is on its way to a restart.
		return v1.PodRunning
	case stopped == succeeded:
		return v1.PodSucceeded
	case policy == v1.RestartPolicyNever:
		return v1.PodFailed
	default:
		// OnFailure with a failure that is being restarted.
		return v1.PodRunning
	}
}

// StatusByName returns the status of the container name in list.
func StatusByName(list []v1.ContainerStatus, name string) (v1.ContainerStatus, bool) {
	for _, s := range list {
		if s.Name == name {
			return s, true
		}
	}
	return v1.ContainerStatus{}, false
}
