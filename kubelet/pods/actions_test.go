package pods

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func sandboxRT(ready bool, containers ...*containerState) *podRuntime {
	return &podRuntime{
		Sandboxes:  []*sandboxState{{ID: "sb", Attempt: 0, Ready: ready, IPs: []string{"10.0.0.5"}}},
		Containers: containers,
	}
}

func runningC(name string) *containerState {
	return &containerState{ID: name + "-id", Name: name, SandboxID: "sb", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		StartedAt: t0, Hash: containerHash(&v1.Container{Name: name, Image: "img"})}
}

func exitedC(name string, code int32) *containerState {
	return &containerState{ID: name + "-id", Name: name, SandboxID: "sb", State: runtimeapi.ContainerState_CONTAINER_EXITED,
		StartedAt: t0, FinishedAt: t0.Add(time.Second), ExitCode: code}
}

func specC(name string) v1.Container { return v1.Container{Name: name, Image: "img"} }

func sidecarC(name string) v1.Container {
	c := specC(name)
	c.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
	return c
}

func actionsPod(policy v1.RestartPolicy, init []v1.Container, containers ...v1.Container) *v1.Pod {
	return &v1.Pod{Spec: v1.PodSpec{RestartPolicy: policy, InitContainers: init, Containers: containers}}
}

func noWait(string, *containerState) time.Duration { return 0 }

func TestComputePodActions(t *testing.T) {
	wait := func(string, *containerState) time.Duration { return 5 * time.Second }
	always, never, onFailure := v1.RestartPolicyAlways, v1.RestartPolicyNever, v1.RestartPolicyOnFailure
	tests := []struct {
		name string
		pod  *v1.Pod
		rt   *podRuntime
		gate restartGate
		want podActions
	}{{
		name: "new pod: sandbox and all containers",
		pod:  actionsPod(always, nil, specC("a"), specC("b")),
		rt:   &podRuntime{},
		want: podActions{KillPod: true, CreateSandbox: true, ContainersToStart: []int{0, 1}},
	}, {
		name: "new pod with init containers: sandbox and the first init container",
		pod:  actionsPod(always, []v1.Container{specC("i1"), specC("i2")}, specC("a")),
		rt:   &podRuntime{},
		want: podActions{KillPod: true, CreateSandbox: true, InitContainersToStart: []int{0}},
	}, {
		name: "dead sandbox: new attempt",
		pod:  actionsPod(always, nil, specC("a")),
		rt:   &podRuntime{Sandboxes: []*sandboxState{{ID: "sb", Attempt: 2}}, Containers: []*containerState{exitedC("a", 0)}},
		want: podActions{KillPod: true, CreateSandbox: true, SandboxAttempt: 3, ContainersToStart: []int{0}},
	}, {
		name: "sandbox without IP: new attempt",
		pod:  actionsPod(always, nil, specC("a")),
		rt:   &podRuntime{Sandboxes: []*sandboxState{{ID: "sb", Ready: true}}},
		want: podActions{KillPod: true, CreateSandbox: true, SandboxAttempt: 1, ContainersToStart: []int{0}},
	}, {
		name: "dead sandbox of a Never pod that ran: finished",
		pod:  actionsPod(never, nil, specC("a")),
		rt:   &podRuntime{Sandboxes: []*sandboxState{{ID: "sb"}}, Containers: []*containerState{exitedC("a", 1)}},
		want: podActions{KillPod: true, Finished: true},
	}, {
		name: "dead sandbox of an OnFailure pod: only failed containers again",
		pod:  actionsPod(onFailure, nil, specC("a"), specC("b")),
		rt:   &podRuntime{Sandboxes: []*sandboxState{{ID: "sb"}}, Containers: []*containerState{exitedC("a", 0), exitedC("b", 1)}},
		want: podActions{KillPod: true, CreateSandbox: true, SandboxAttempt: 1, ContainersToStart: []int{1}},
	}, {
		name: "all running: nothing",
		pod:  actionsPod(always, nil, specC("a")),
		rt:   sandboxRT(true, runningC("a")),
		want: podActions{},
	}, {
		name: "first init container running: wait",
		pod:  actionsPod(always, []v1.Container{specC("i1"), specC("i2")}, specC("a")),
		rt:   sandboxRT(true, runningC("i1")),
		want: podActions{},
	}, {
		name: "first init container done: the second",
		pod:  actionsPod(always, []v1.Container{specC("i1"), specC("i2")}, specC("a")),
		rt:   sandboxRT(true, exitedC("i1", 0)),
		want: podActions{InitContainersToStart: []int{1}},
	}, {
		name: "init containers done: regular containers",
		pod:  actionsPod(always, []v1.Container{specC("i1"), specC("i2")}, specC("a"), specC("b")),
		rt:   sandboxRT(true, exitedC("i1", 0), exitedC("i2", 0)),
		want: podActions{ContainersToStart: []int{0, 1}},
	}, {
		name: "init container failed: restarted",
		pod:  actionsPod(always, []v1.Container{specC("i1")}, specC("a")),
		rt:   sandboxRT(true, exitedC("i1", 1)),
		want: podActions{InitContainersToStart: []int{0}},
	}, {
		name: "init container failed in back-off: wait",
		pod:  actionsPod(always, []v1.Container{specC("i1")}, specC("a")),
		rt:   sandboxRT(true, exitedC("i1", 1)),
		gate: wait,
		want: podActions{BackOff: map[string]time.Duration{"i1": 5 * time.Second}},
	}, {
		name: "init container failed under Never: pod finished",
		pod:  actionsPod(never, []v1.Container{specC("i1")}, specC("a")),
		rt:   sandboxRT(true, exitedC("i1", 1)),
		want: podActions{KillPod: true, Finished: true},
	}, {
		name: "sidecar started: the next init container in the same round",
		pod:  actionsPod(always, []v1.Container{sidecarC("s"), specC("i1")}, specC("a")),
		rt:   sandboxRT(true, runningC("s")),
		want: podActions{InitContainersToStart: []int{1}},
	}, {
		name: "sidecar not started yet: only the sidecar",
		pod:  actionsPod(always, []v1.Container{specC("i0"), sidecarC("s"), specC("i1")}, specC("a")),
		rt:   sandboxRT(true, exitedC("i0", 0)),
		want: podActions{InitContainersToStart: []int{1}},
	}, {
		name: "sidecar and init done: regular containers, sidecar kept",
		pod:  actionsPod(always, []v1.Container{sidecarC("s"), specC("i1")}, specC("a")),
		rt:   sandboxRT(true, runningC("s"), exitedC("i1", 0)),
		want: podActions{ContainersToStart: []int{0}},
	}, {
		name: "sidecar exited after initialization: restarted, regular containers untouched",
		pod:  actionsPod(always, []v1.Container{sidecarC("s")}, specC("a")),
		rt:   sandboxRT(true, exitedC("s", 1), runningC("a")),
		want: podActions{InitContainersToStart: []int{0}},
	}, {
		name: "regular containers done under Never: finished, sidecar killed",
		pod:  actionsPod(never, []v1.Container{sidecarC("s")}, specC("a")),
		rt:   sandboxRT(true, runningC("s"), exitedC("a", 0)),
		want: podActions{KillPod: true, Finished: true},
	}, {
		name: "crashed container under Always: restart",
		pod:  actionsPod(always, nil, specC("a"), specC("b")),
		rt:   sandboxRT(true, exitedC("a", 0), runningC("b")),
		want: podActions{ContainersToStart: []int{0}},
	}, {
		name: "crashed container in back-off: wait, pod not finished",
		pod:  actionsPod(always, nil, specC("a")),
		rt:   sandboxRT(true, exitedC("a", 1)),
		gate: wait,
		want: podActions{BackOff: map[string]time.Duration{"a": 5 * time.Second}},
	}, {
		name: "OnFailure: a success stays, a failure restarts",
		pod:  actionsPod(onFailure, nil, specC("a"), specC("b")),
		rt:   sandboxRT(true, exitedC("a", 0), exitedC("b", 2)),
		want: podActions{ContainersToStart: []int{1}},
	}, {
		name: "OnFailure all succeeded: finished",
		pod:  actionsPod(onFailure, nil, specC("a")),
		rt:   sandboxRT(true, exitedC("a", 0)),
		want: podActions{KillPod: true, Finished: true},
	}, {
		name: "Never with one container still running: nothing",
		pod:  actionsPod(never, nil, specC("a"), specC("b")),
		rt:   sandboxRT(true, exitedC("a", 1), runningC("b")),
		want: podActions{},
	}, {
		name: "image changed: kill and start again",
		pod:  actionsPod(always, nil, v1.Container{Name: "a", Image: "img:2"}),
		rt:   sandboxRT(true, runningC("a")),
		want: podActions{
			ContainersToKill:  map[string]killReason{"a-id": {Name: "a", Message: "Container a definition changed, will be restarted"}},
			ContainersToStart: []int{0},
		},
	}, {
		name: "container created but never started: start again",
		pod:  actionsPod(always, nil, specC("a")),
		rt: sandboxRT(true, &containerState{ID: "a-id", Name: "a", SandboxID: "sb",
			State: runtimeapi.ContainerState_CONTAINER_CREATED, CreatedAt: t0}),
		want: podActions{ContainersToStart: []int{0}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := tt.gate
			if gate == nil {
				gate = noWait
			}
			got := computePodActions(tt.pod, tt.rt, gate)
			if tt.want.ContainersToKill == nil {
				tt.want.ContainersToKill = map[string]killReason{}
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

func TestBackoff(t *testing.T) {
	b := newBackoff(10*time.Second, 300*time.Second)
	now := t0
	exit := now
	if got := b.Remaining("a", exit, now); got != 0 {
		t.Fatalf("first restart waits %s, want 0", got)
	}
	var delays []time.Duration
	for range 7 {
		b.Next("a", exit, now)
		delays = append(delays, b.Delay("a"))
		exit = now.Add(time.Second)
		now = exit
	}
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300}
	for i := range want {
		want[i] *= time.Second
	}
	if diff := cmp.Diff(want, delays); diff != "" {
		t.Errorf("delays (-want +got):\n%s", diff)
	}
	if got := b.Remaining("a", exit, exit.Add(100*time.Second)); got != 200*time.Second {
		t.Errorf("remaining %s, want 200s", got)
	}
	// A container that ran for more than 10 minutes starts over.
	late := now.Add(11 * time.Minute)
	if got := b.Remaining("a", late, late); got != 0 {
		t.Errorf("remaining after a long run %s, want 0", got)
	}
	b.Next("a", late, late)
	if got := b.Delay("a"); got != 10*time.Second {
		t.Errorf("delay after a long run %s, want 10s", got)
	}
	if got := b.RemainingSinceLast("a", late.Add(4*time.Second)); got != 6*time.Second {
		t.Errorf("remaining since last %s, want 6s", got)
	}
}
