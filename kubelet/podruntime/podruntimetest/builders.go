package podruntimetest

import (
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/kubelet/podruntime"
)

// T0 is the fixed time the built containers started at.
var T0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// State is a pod's runtime state with one sandbox "sb" (ready or not, pod
// IP 10.0.0.5) and the given containers.
func State(ready bool, containers ...*podruntime.ContainerState) *podruntime.PodState {
	return &podruntime.PodState{
		Sandboxes:  []*podruntime.SandboxState{{ID: "sb", Attempt: 0, Ready: ready, IPs: []string{"10.0.0.5"}}},
		Containers: containers,
	}
}

// Running is a running container of Spec(name), started at T0.
func Running(name string) *podruntime.ContainerState {
	return &podruntime.ContainerState{ID: name + "-id", Name: name, SandboxID: "sb", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		StartedAt: T0, Hash: podruntime.ContainerHash(&v1.Container{Name: name, Image: "img"})}
}

// Exited is a container that ran from T0 for a second and exited with code.
func Exited(name string, code int32) *podruntime.ContainerState {
	return &podruntime.ContainerState{ID: name + "-id", Name: name, SandboxID: "sb", State: runtimeapi.ContainerState_CONTAINER_EXITED,
		StartedAt: T0, FinishedAt: T0.Add(time.Second), ExitCode: code}
}

// Spec is a container spec of image "img".
func Spec(name string) v1.Container { return v1.Container{Name: name, Image: "img"} }

// Sidecar is Spec(name) as a sidecar: an init container that always restarts.
func Sidecar(name string) v1.Container {
	c := Spec(name)
	c.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
	return c
}

// Pod is a pod of the restart policy, init containers and containers.
func Pod(policy v1.RestartPolicy, init []v1.Container, containers ...v1.Container) *v1.Pod {
	return &v1.Pod{Spec: v1.PodSpec{RestartPolicy: policy, InitContainers: init, Containers: containers}}
}

// NoWait is a restart gate without back-off.
func NoWait(string, *podruntime.ContainerState) time.Duration { return 0 }

// Debug is an ephemeral container, targeting another container's process
// namespace unless target is "".
func Debug(name, target string) v1.EphemeralContainer {
	return v1.EphemeralContainer{
		EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: name, Image: "img"},
		TargetContainerName:      target,
	}
}

// WithEphemeral sets the pod's ephemeral containers and returns it.
func WithEphemeral(pod *v1.Pod, ecs ...v1.EphemeralContainer) *v1.Pod {
	pod.Spec.EphemeralContainers = ecs
	return pod
}

// Scheduled is Pod(policy, init, containers...) named ns/p with UID u,
// scheduled: its status has the PodScheduled condition.
func Scheduled(policy v1.RestartPolicy, init []v1.Container, containers ...v1.Container) *v1.Pod {
	p := Pod(policy, init, containers...)
	p.Name, p.Namespace, p.UID = "p", "ns", "u"
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue}}
	return p
}
