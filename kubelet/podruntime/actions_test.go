package podruntime_test

import (
	"testing"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podruntime/podruntimetest"
	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestComputePodActions(t *testing.T) {
	wait := func(string, *podruntime.ContainerState) time.Duration { return 5 * time.Second }
	always, never, onFailure := v1.RestartPolicyAlways, v1.RestartPolicyNever, v1.RestartPolicyOnFailure
	tests := []struct {
		name string
		pod  *v1.Pod
		rt   *podruntime.PodState
		gate podruntime.RestartGate
		want podruntime.Actions
	}{{
		name: "new pod: sandbox and all containers",
		pod:  podruntimetest.Pod(always, nil, podruntimetest.Spec("a"), podruntimetest.Spec("b")),
		rt:   &podruntime.PodState{},
		want: podruntime.Actions{KillPod: true, CreateSandbox: true, ContainersToStart: []int{0, 1}},
	}, {
		name: "new pod with init containers: sandbox and the first init container",
		pod:  podruntimetest.Pod(always, []v1.Container{podruntimetest.Spec("i1"), podruntimetest.Spec("i2")}, podruntimetest.Spec("a")),
		rt:   &podruntime.PodState{},
		want: podruntime.Actions{KillPod: true, CreateSandbox: true, InitContainersToStart: []int{0}},
	}, {
		name: "dead sandbox: new attempt",
		pod:  podruntimetest.Pod(always, nil, podruntimetest.Spec("a")),
		rt:   &podruntime.PodState{Sandboxes: []*podruntime.SandboxState{{ID: "sb", Attempt: 2}}, Containers: []*podruntime.ContainerState{podruntimetest.Exited("a", 0)}},
		want: podruntime.Actions{KillPod: true, CreateSandbox: true, SandboxAttempt: 3, ContainersToStart: []int{0}},
	}, {
		name: "sandbox without IP: new attempt",
		pod:  podruntimetest.Pod(always, nil, podruntimetest.Spec("a")),
		rt:   &podruntime.PodState{Sandboxes: []*podruntime.SandboxState{{ID: "sb", Ready: true}}},
		want: podruntime.Actions{KillPod: true, CreateSandbox: true, SandboxAttempt: 1, ContainersToStart: []int{0}},
	}, {
		name: "dead sandbox of a Never pod that ran: finished",
		pod:  podruntimetest.Pod(never, nil, podruntimetest.Spec("a")),
		rt:   &podruntime.PodState{Sandboxes: []*podruntime.SandboxState{{ID: "sb"}}, Containers: []*podruntime.ContainerState{podruntimetest.Exited("a", 1)}},
		want: podruntime.Actions{KillPod: true, Finished: true},
	}, {
		name: "dead sandbox of an OnFailure pod: only failed containers again",
		pod:  podruntimetest.Pod(onFailure, nil, podruntimetest.Spec("a"), podruntimetest.Spec("b")),
		rt:   &podruntime.PodState{Sandboxes: []*podruntime.SandboxState{{ID: "sb"}}, Containers: []*podruntime.ContainerState{podruntimetest.Exited("a", 0), podruntimetest.Exited("b", 1)}},
		want: podruntime.Actions{KillPod: true, CreateSandbox: true, SandboxAttempt: 1, ContainersToStart: []int{1}},
	}, {
		name: "all running: nothing",
		pod:  podruntimetest.Pod(always, nil, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Running("a")),
		want: podruntime.Actions{},
	}, {
		name: "first init container running: wait",
		pod:  podruntimetest.Pod(always, []v1.Container{podruntimetest.Spec("i1"), podruntimetest.Spec("i2")}, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Running("i1")),
		want: podruntime.Actions{},
	}, {
		name: "first init container done: the second",
		pod:  podruntimetest.Pod(always, []v1.Container{podruntimetest.Spec("i1"), podruntimetest.Spec("i2")}, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("i1", 0)),
		want: podruntime.Actions{InitContainersToStart: []int{1}},
	}, {
		name: "init containers done: regular containers",
		pod:  podruntimetest.Pod(always, []v1.Container{podruntimetest.Spec("i1"), podruntimetest.Spec("i2")}, podruntimetest.Spec("a"), podruntimetest.Spec("b")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("i1", 0), podruntimetest.Exited("i2", 0)),
		want: podruntime.Actions{ContainersToStart: []int{0, 1}},
	}, {
		name: "init container failed: restarted",
		pod:  podruntimetest.Pod(always, []v1.Container{podruntimetest.Spec("i1")}, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("i1", 1)),
		want: podruntime.Actions{InitContainersToStart: []int{0}},
	}, {
		name: "init container failed in back-off: wait",
		pod:  podruntimetest.Pod(always, []v1.Container{podruntimetest.Spec("i1")}, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("i1", 1)),
		gate: wait,
		want: podruntime.Actions{BackOff: map[string]time.Duration{"i1": 5 * time.Second}},
	}, {
		name: "init container failed under Never: pod finished",
		pod:  podruntimetest.Pod(never, []v1.Container{podruntimetest.Spec("i1")}, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("i1", 1)),
		want: podruntime.Actions{KillPod: true, Finished: true},
	}, {
		name: "sidecar started: the next init container in the same round",
		pod:  podruntimetest.Pod(always, []v1.Container{podruntimetest.Sidecar("s"), podruntimetest.Spec("i1")}, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Running("s")),
		want: podruntime.Actions{InitContainersToStart: []int{1}},
	}, {
		name: "sidecar not started yet: only the sidecar",
		pod:  podruntimetest.Pod(always, []v1.Container{podruntimetest.Spec("i0"), podruntimetest.Sidecar("s"), podruntimetest.Spec("i1")}, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("i0", 0)),
		want: podruntime.Actions{InitContainersToStart: []int{1}},
	}, {
		name: "sidecar and init done: regular containers, sidecar kept",
		pod:  podruntimetest.Pod(always, []v1.Container{podruntimetest.Sidecar("s"), podruntimetest.Spec("i1")}, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Running("s"), podruntimetest.Exited("i1", 0)),
		want: podruntime.Actions{ContainersToStart: []int{0}},
	}, {
		name: "sidecar exited after initialization: restarted, regular containers untouched",
		pod:  podruntimetest.Pod(always, []v1.Container{podruntimetest.Sidecar("s")}, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("s", 1), podruntimetest.Running("a")),
		want: podruntime.Actions{InitContainersToStart: []int{0}},
	}, {
		name: "regular containers done under Never: finished, sidecar killed",
		pod:  podruntimetest.Pod(never, []v1.Container{podruntimetest.Sidecar("s")}, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Running("s"), podruntimetest.Exited("a", 0)),
		want: podruntime.Actions{KillPod: true, Finished: true},
	}, {
		name: "crashed container under Always: restart",
		pod:  podruntimetest.Pod(always, nil, podruntimetest.Spec("a"), podruntimetest.Spec("b")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("a", 0), podruntimetest.Running("b")),
		want: podruntime.Actions{ContainersToStart: []int{0}},
	}, {
		name: "crashed container in back-off: wait, pod not finished",
		pod:  podruntimetest.Pod(always, nil, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("a", 1)),
		gate: wait,
		want: podruntime.Actions{BackOff: map[string]time.Duration{"a": 5 * time.Second}},
	}, {
		name: "OnFailure: a success stays, a failure restarts",
		pod:  podruntimetest.Pod(onFailure, nil, podruntimetest.Spec("a"), podruntimetest.Spec("b")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("a", 0), podruntimetest.Exited("b", 2)),
		want: podruntime.Actions{ContainersToStart: []int{1}},
	}, {
		name: "OnFailure all succeeded: finished",
		pod:  podruntimetest.Pod(onFailure, nil, podruntimetest.Spec("a")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("a", 0)),
		want: podruntime.Actions{KillPod: true, Finished: true},
	}, {
		name: "Never with one container still running: nothing",
		pod:  podruntimetest.Pod(never, nil, podruntimetest.Spec("a"), podruntimetest.Spec("b")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("a", 1), podruntimetest.Running("b")),
		want: podruntime.Actions{},
	}, {
		name: "image changed: kill and start again",
		pod:  podruntimetest.Pod(always, nil, v1.Container{Name: "a", Image: "img:2"}),
		rt:   podruntimetest.State(true, podruntimetest.Running("a")),
		want: podruntime.Actions{
			ContainersToKill:  map[string]podruntime.KillReason{"a-id": {Name: "a", Message: "Container a definition changed, will be restarted"}},
			ContainersToStart: []int{0},
		},
	}, {
		name: "container created but never started: start again",
		pod:  podruntimetest.Pod(always, nil, podruntimetest.Spec("a")),
		rt: podruntimetest.State(true, &podruntime.ContainerState{ID: "a-id", Name: "a", SandboxID: "sb",
			State: runtimeapi.ContainerState_CONTAINER_CREATED, CreatedAt: podruntimetest.T0}),
		want: podruntime.Actions{ContainersToStart: []int{0}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := tt.gate
			if gate == nil {
				gate = podruntimetest.NoWait
			}
			got := podruntime.ComputePodActions(tt.pod, tt.rt, gate)
			if tt.want.ContainersToKill == nil {
				tt.want.ContainersToKill = map[string]podruntime.KillReason{}
			}
			if tt.want.BackOff == nil {
				tt.want.BackOff = map[string]time.Duration{}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
		})
	}
}
