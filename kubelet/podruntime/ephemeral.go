package podruntime

import (
	"context"
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	v1 "k8s.io/api/core/v1"
)

// Ephemeral containers are what `kubectl debug` adds to a running pod
// through the pods/ephemeralcontainers subresource. As under the kubelet,
// each one runs once: it is started in the pod's sandbox when the runtime
// holds no instance of it, and never again, whatever its exit. Its instance
// carries the same labels as any container, so a restarted berth finds it
// and leaves it be.

// EphemeralSpec is an ephemeral container as the container it is run as.
// The API server refuses ports, probes and lifecycle hooks on ephemeral
// containers; they are cleared here too, so that nothing of them ever runs
// (no postStart, no preStop, no probe worker).
func EphemeralSpec(ec *v1.EphemeralContainer) *v1.Container {
	c := v1.Container(ec.EphemeralContainerCommon)
	c.Ports = nil
	c.Lifecycle = nil
	c.LivenessProbe, c.ReadinessProbe, c.StartupProbe = nil, nil, nil
	return &c
}

// ephemeralContainers plans the ephemeral containers of a pod whose sandbox
// is up: those the runtime never ran start now. Like the kubelet, this does
// not wait for the pod to be initialized (a debugger may be what finds why an
// init container hangs). A pod that is done, or being stopped, gets none.
func (p *planner) ephemeralContainers() {
	if p.acts.KillPod || p.acts.Finished || p.pod.DeletionTimestamp != nil {
		return
	}
	for i := range p.pod.Spec.EphemeralContainers {
		if len(p.rt.Instances(p.pod.Spec.EphemeralContainers[i].Name)) == 0 {
			p.acts.EphemeralContainersToStart = append(p.acts.EphemeralContainersToStart, i)
		}
	}
}

// PIDTarget returns the runtime ID of the container whose process namespace
// the container named name joins: its targetContainerName's newest instance
// in the current sandbox. It is "" for a container that is not ephemeral or
// names no target.
func PIDTarget(pod *v1.Pod, name string, rt *PodState) (string, error) {
	for i := range pod.Spec.EphemeralContainers {
		ec := &pod.Spec.EphemeralContainers[i]
		if ec.Name != name || ec.TargetContainerName == "" {
			continue
		}
		cur := rt.Current(ec.TargetContainerName)
		if cur == nil {
			return "", fmt.Errorf("%w: unable to find target container %s", ErrConfig, ec.TargetContainerName)
		}
		return cur.ID, nil
	}
	return "", nil
}

// joinPIDNamespace makes the container share the process namespace of
// container target. A pod that shares one process namespace among all its
// containers keeps it: the target's processes are there already.
func joinPIDNamespace(ns *runtimeapi.NamespaceOption, target string) {
	if target == "" || ns == nil || ns.Pid != runtimeapi.NamespaceMode_CONTAINER {
		return
	}
	ns.Pid = runtimeapi.NamespaceMode_TARGET
	ns.TargetId = target
}

// startEphemeralContainers starts the ephemeral containers at indices idx of
// the pod's spec. One that fails does not keep the others from starting.
func (p *Pod) startEphemeralContainers(ctx context.Context, pod *v1.Pod, sb *PodSandbox, rt *PodState, idx []int) error {
	var errs []error
	for _, i := range idx {
		if err := p.StartContainer(ctx, pod, sb, EphemeralSpec(&pod.Spec.EphemeralContainers[i]), rt); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
