package podruntime_test

import (
	"errors"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podruntime/podruntimetest"
	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

func TestComputePodActionsEphemeral(t *testing.T) {
	always, never := v1.RestartPolicyAlways, v1.RestartPolicyNever
	deleting := podruntimetest.WithEphemeral(podruntimetest.Pod(always, nil, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", ""))
	deleting.DeletionTimestamp = &metav1.Time{Time: podruntimetest.T0}
	inOldSandbox := podruntimetest.Exited("dbg", 0)
	inOldSandbox.SandboxID = "old"
	tests := []struct {
		name string
		pod  *v1.Pod
		rt   *podruntime.PodState
		want podruntime.Actions
	}{{
		name: "new ephemeral container in a running pod: started",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(always, nil, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", "a")),
		rt:   podruntimetest.State(true, podruntimetest.Running("a")),
		want: podruntime.Actions{EphemeralContainersToStart: []int{0}},
	}, {
		name: "running ephemeral container: left alone",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(always, nil, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", "")),
		rt:   podruntimetest.State(true, podruntimetest.Running("dbg"), podruntimetest.Running("a")),
		want: podruntime.Actions{},
	}, {
		name: "ephemeral container that failed: never restarted, even under Always",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(always, nil, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", "")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("dbg", 1), podruntimetest.Running("a")),
		want: podruntime.Actions{},
	}, {
		name: "ephemeral container that succeeded: not started again",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(always, nil, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", "")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("dbg", 0), podruntimetest.Running("a")),
		want: podruntime.Actions{},
	}, {
		name: "ephemeral container of an older sandbox: not started in the new one",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(always, nil, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", "")),
		rt:   podruntimetest.State(true, inOldSandbox, podruntimetest.Running("a")),
		want: podruntime.Actions{},
	}, {
		name: "only the new one of two",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(always, nil, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", ""), podruntimetest.Debug("dbg2", "a")),
		rt:   podruntimetest.State(true, podruntimetest.Running("dbg"), podruntimetest.Running("a")),
		want: podruntime.Actions{EphemeralContainersToStart: []int{1}},
	}, {
		name: "no sandbox: the sandbox first, no ephemeral container",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(always, nil, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", "")),
		rt:   &podruntime.PodState{},
		want: podruntime.Actions{KillPod: true, CreateSandbox: true, ContainersToStart: []int{0}},
	}, {
		name: "dead sandbox: a new one first, no ephemeral container",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(always, nil, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", "")),
		rt:   podruntimetest.State(false, podruntimetest.Exited("a", 0)),
		want: podruntime.Actions{KillPod: true, CreateSandbox: true, SandboxAttempt: 1, ContainersToStart: []int{0}},
	}, {
		name: "init container still running: the ephemeral container starts anyway",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(always, []v1.Container{podruntimetest.Spec("i1")}, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", "")),
		rt:   podruntimetest.State(true, podruntimetest.Running("i1")),
		want: podruntime.Actions{EphemeralContainersToStart: []int{0}},
	}, {
		name: "init container failed under Never: pod finished, no ephemeral container",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(never, []v1.Container{podruntimetest.Spec("i1")}, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", "")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("i1", 1)),
		want: podruntime.Actions{KillPod: true, Finished: true},
	}, {
		name: "every container done: pod finished, no ephemeral container",
		pod:  podruntimetest.WithEphemeral(podruntimetest.Pod(never, nil, podruntimetest.Spec("a")), podruntimetest.Debug("dbg", "")),
		rt:   podruntimetest.State(true, podruntimetest.Exited("a", 0)),
		want: podruntime.Actions{KillPod: true, Finished: true},
	}, {
		name: "pod being deleted: no ephemeral container",
		pod:  deleting,
		rt:   podruntimetest.State(true, podruntimetest.Running("a")),
		want: podruntime.Actions{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := podruntime.ComputePodActions(tt.pod, tt.rt, podruntimetest.NoWait)
			tt.want.ContainersToKill = map[string]podruntime.KillReason{}
			tt.want.BackOff = map[string]time.Duration{}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			// A round that only starts an ephemeral container is work to do.
			if len(got.EphemeralContainersToStart) > 0 && got.Empty() {
				t.Error("empty() is true for actions that start an ephemeral container")
			}
		})
	}
}

func TestEphemeralContainerConfig(t *testing.T) {
	rt := podruntimetest.State(true, podruntimetest.Running("app"))
	for _, tt := range []struct {
		name    string
		shared  bool
		target  string
		wantPID runtimeapi.NamespaceMode
		wantID  string
	}{
		{name: "target: the target's PID namespace", target: "app", wantPID: runtimeapi.NamespaceMode_TARGET, wantID: "app-id"},
		{name: "no target: its own", wantPID: runtimeapi.NamespaceMode_CONTAINER},
		{name: "pod shares one namespace: kept", shared: true, target: "app", wantPID: runtimeapi.NamespaceMode_POD},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := podruntimetest.WithEphemeral(podruntimetest.Pod(v1.RestartPolicyAlways, nil, podruntimetest.Spec("app")), podruntimetest.Debug("dbg", tt.target))
			pod.Spec.ShareProcessNamespace = &tt.shared
			ec := &pod.Spec.EphemeralContainers[0]
			ec.Env = []v1.EnvVar{{Name: "MODE", Value: "debug"}}
			ec.VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
			ec.Lifecycle = &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"x"}}}}
			ec.Stdin, ec.TTY = true, true
			target, err := podruntime.PIDTarget(pod, "dbg", rt)
			if err != nil {
				t.Fatal(err)
			}
			c := podruntime.EphemeralSpec(ec)
			env := &podruntime.EnvVars{}
			env.Set("MODE", "debug")
			cfg, err := podruntime.ContainerConfig(podruntime.ContainerParams{
				Pod: pod, Container: c, ImageRef: "img", Env: env,
				Mounts: map[string]string{"data": "/host/data"}, PIDTarget: target,
			}, podruntime.ResourceParams{}, "/")
			if err != nil {
				t.Fatal(err)
			}
			ns := cfg.Linux.SecurityContext.NamespaceOptions
			if ns.Pid != tt.wantPID || ns.TargetId != tt.wantID {
				t.Errorf("pid namespace %v target %q, want %v %q", ns.Pid, ns.TargetId, tt.wantPID, tt.wantID)
			}
			if c.Lifecycle != nil {
				t.Error("lifecycle hooks kept on an ephemeral container")
			}
			if !cfg.Stdin || !cfg.Tty || cfg.Labels[cri.LabelContainerName] != "dbg" {
				t.Errorf("stdin %v tty %v labels %v", cfg.Stdin, cfg.Tty, cfg.Labels)
			}
			if len(cfg.Envs) != 1 || cfg.Envs[0].Key != "MODE" || len(cfg.Mounts) != 1 || cfg.Mounts[0].HostPath != "/host/data" {
				t.Errorf("env %v mounts %v", cfg.Envs, cfg.Mounts)
			}
		})
	}
}

func TestPIDTarget(t *testing.T) {
	pod := podruntimetest.WithEphemeral(podruntimetest.Pod(v1.RestartPolicyAlways, nil, podruntimetest.Spec("app"), podruntimetest.Spec("other")),
		podruntimetest.Debug("dbg", "app"), podruntimetest.Debug("lost", "other"), podruntimetest.Debug("plain", ""))
	rt := podruntimetest.State(true, podruntimetest.Running("app"))
	for name, want := range map[string]string{"dbg": "app-id", "plain": "", "app": ""} {
		if got, err := podruntime.PIDTarget(pod, name, rt); err != nil || got != want {
			t.Errorf("pidTarget(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := podruntime.PIDTarget(pod, "lost", rt); !errors.Is(err, podruntime.ErrConfig) {
		t.Errorf("pidTarget of a missing target: %v, want a configuration error", err)
	}
}
