package pods

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func debugC(name, target string) v1.EphemeralContainer {
	return v1.EphemeralContainer{
		EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: name, Image: "img"},
		TargetContainerName:      target,
	}
}

func withEphemeral(pod *v1.Pod, ecs ...v1.EphemeralContainer) *v1.Pod {
	pod.Spec.EphemeralContainers = ecs
	return pod
}

func TestComputePodActionsEphemeral(t *testing.T) {
	always, never := v1.RestartPolicyAlways, v1.RestartPolicyNever
	deleting := withEphemeral(actionsPod(always, nil, specC("a")), debugC("dbg", ""))
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	inOldSandbox := exitedC("dbg", 0)
	inOldSandbox.SandboxID = "old"
	tests := []struct {
		name string
		pod  *v1.Pod
		rt   *podRuntime
		want podActions
	}{{
		name: "new ephemeral container in a running pod: started",
		pod:  withEphemeral(actionsPod(always, nil, specC("a")), debugC("dbg", "a")),
		rt:   sandboxRT(true, runningC("a")),
		want: podActions{EphemeralContainersToStart: []int{0}},
	}, {
		name: "running ephemeral container: left alone",
		pod:  withEphemeral(actionsPod(always, nil, specC("a")), debugC("dbg", "")),
		rt:   sandboxRT(true, runningC("dbg"), runningC("a")),
		want: podActions{},
	}, {
		name: "ephemeral container that failed: never restarted, even under Always",
		pod:  withEphemeral(actionsPod(always, nil, specC("a")), debugC("dbg", "")),
		rt:   sandboxRT(true, exitedC("dbg", 1), runningC("a")),
		want: podActions{},
	}, {
		name: "ephemeral container that succeeded: not started again",
		pod:  withEphemeral(actionsPod(always, nil, specC("a")), debugC("dbg", "")),
		rt:   sandboxRT(true, exitedC("dbg", 0), runningC("a")),
		want: podActions{},
	}, {
		name: "ephemeral container of an older sandbox: not started in the new one",
		pod:  withEphemeral(actionsPod(always, nil, specC("a")), debugC("dbg", "")),
		rt:   sandboxRT(true, inOldSandbox, runningC("a")),
		want: podActions{},
	}, {
		name: "only the new one of two",
		pod:  withEphemeral(actionsPod(always, nil, specC("a")), debugC("dbg", ""), debugC("dbg2", "a")),
		rt:   sandboxRT(true, runningC("dbg"), runningC("a")),
		want: podActions{EphemeralContainersToStart: []int{1}},
	}, {
		name: "no sandbox: the sandbox first, no ephemeral container",
		pod:  withEphemeral(actionsPod(always, nil, specC("a")), debugC("dbg", "")),
		rt:   &podRuntime{},
		want: podActions{KillPod: true, CreateSandbox: true, ContainersToStart: []int{0}},
	}, {
		name: "dead sandbox: a new one first, no ephemeral container",
		pod:  withEphemeral(actionsPod(always, nil, specC("a")), debugC("dbg", "")),
		rt:   sandboxRT(false, exitedC("a", 0)),
		want: podActions{KillPod: true, CreateSandbox: true, SandboxAttempt: 1, ContainersToStart: []int{0}},
	}, {
		name: "init container still running: the ephemeral container starts anyway",
		pod:  withEphemeral(actionsPod(always, []v1.Container{specC("i1")}, specC("a")), debugC("dbg", "")),
		rt:   sandboxRT(true, runningC("i1")),
		want: podActions{EphemeralContainersToStart: []int{0}},
	}, {
		name: "init container failed under Never: pod finished, no ephemeral container",
		pod:  withEphemeral(actionsPod(never, []v1.Container{specC("i1")}, specC("a")), debugC("dbg", "")),
		rt:   sandboxRT(true, exitedC("i1", 1)),
		want: podActions{KillPod: true, Finished: true},
	}, {
		name: "every container done: pod finished, no ephemeral container",
		pod:  withEphemeral(actionsPod(never, nil, specC("a")), debugC("dbg", "")),
		rt:   sandboxRT(true, exitedC("a", 0)),
		want: podActions{KillPod: true, Finished: true},
	}, {
		name: "pod being deleted: no ephemeral container",
		pod:  deleting,
		rt:   sandboxRT(true, runningC("a")),
		want: podActions{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := computePodActions(tt.pod, tt.rt, noWait)
			tt.want.ContainersToKill = map[string]killReason{}
			tt.want.BackOff = map[string]time.Duration{}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			// A round that only starts an ephemeral container is work to do.
			if len(got.EphemeralContainersToStart) > 0 && got.empty() {
				t.Error("empty() is true for actions that start an ephemeral container")
			}
		})
	}
}

func TestEphemeralContainerConfig(t *testing.T) {
	rt := sandboxRT(true, runningC("app"))
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
			pod := withEphemeral(actionsPod(v1.RestartPolicyAlways, nil, specC("app")), debugC("dbg", tt.target))
			pod.Spec.ShareProcessNamespace = &tt.shared
			ec := &pod.Spec.EphemeralContainers[0]
			ec.Env = []v1.EnvVar{{Name: "MODE", Value: "debug"}}
			ec.VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
			ec.Lifecycle = &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"x"}}}}
			ec.Stdin, ec.TTY = true, true
			target, err := pidTarget(pod, "dbg", rt)
			if err != nil {
				t.Fatal(err)
			}
			c := ephemeralSpec(ec)
			env := &envVars{}
			env.set("MODE", "debug")
			cfg, err := containerConfig(containerParams{
				Pod: pod, Container: c, ImageRef: "img", Env: env,
				Mounts: map[string]string{"data": "/host/data"}, PIDTarget: target,
			}, resourceParams{}, "/")
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
			if !cfg.Stdin || !cfg.Tty || cfg.Labels[labelContainerName] != "dbg" {
				t.Errorf("stdin %v tty %v labels %v", cfg.Stdin, cfg.Tty, cfg.Labels)
			}
			if len(cfg.Envs) != 1 || cfg.Envs[0].Key != "MODE" || len(cfg.Mounts) != 1 || cfg.Mounts[0].HostPath != "/host/data" {
				t.Errorf("env %v mounts %v", cfg.Envs, cfg.Mounts)
			}
		})
	}
}

func TestPIDTarget(t *testing.T) {
	pod := withEphemeral(actionsPod(v1.RestartPolicyAlways, nil, specC("app"), specC("other")),
		debugC("dbg", "app"), debugC("lost", "other"), debugC("plain", ""))
	rt := sandboxRT(true, runningC("app"))
	for name, want := range map[string]string{"dbg": "app-id", "plain": "", "app": ""} {
		if got, err := pidTarget(pod, name, rt); err != nil || got != want {
			t.Errorf("pidTarget(%s) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := pidTarget(pod, "lost", rt); !errors.Is(err, errConfig) {
		t.Errorf("pidTarget of a missing target: %v, want a configuration error", err)
	}
}

func TestEphemeralStatuses(t *testing.T) {
	pod := withEphemeral(actionsPod(v1.RestartPolicyAlways, nil, specC("app")),
		debugC("zz-new", ""), debugC("run", "app"), debugC("done", ""), debugC("bad", ""))
	run, done := runningC("run"), exitedC("done", 3)
	run.ImageRef, done.ImageRef = "sha256:run", "sha256:done"
	in := statusInput{
		Pod:         pod,
		RT:          sandboxRT(true, run, done, runningC("app")),
		Waiting:     map[string]waitingReason{"bad": {Reason: reasonErrImagePull, Message: "no such image"}},
		Now:         t0,
		RuntimeName: "containerd",
	}
	st := buildStatus(in)
	var names []string
	for _, s := range st.EphemeralContainerStatuses {
		names = append(names, s.Name)
		if s.Started != nil || s.Ready || s.Image != "img" {
			t.Errorf("%s: started %v ready %v image %q", s.Name, s.Started, s.Ready, s.Image)
		}
	}
	if want := []string{"bad", "done", "run", "zz-new"}; !slices.Equal(names, want) {
		t.Fatalf("statuses %v, want %v", names, want)
	}
	byName := func(n string) v1.ContainerStatus { s, _ := statusByName(st.EphemeralContainerStatuses, n); return s }
	if s := byName("run"); s.State.Running == nil || s.ContainerID != "containerd://run-id" || s.ImageID != "sha256:run" {
		t.Errorf("run: %+v", s)
	}
	if s := byName("done"); s.State.Terminated == nil || s.State.Terminated.ExitCode != 3 || s.State.Terminated.Reason != reasonError {
		t.Errorf("done: %+v", s.State)
	}
	if s := byName("bad"); s.State.Waiting == nil || s.State.Waiting.Reason != reasonErrImagePull {
		t.Errorf("bad: %+v", s.State)
	}
	if s := byName("zz-new"); s.State.Waiting == nil || s.State.Waiting.Reason != reasonContainerCreating {
		t.Errorf("zz-new: %+v", s.State)
	}
	if len(st.ContainerStatuses) != 1 || st.Phase != v1.PodRunning {
		t.Errorf("ephemeral containers changed the pod: %d statuses, phase %s", len(st.ContainerStatuses), st.Phase)
	}
}

// ephemeralStatus is the API status of the pod's ephemeral container name.
func (h *harness) ephemeralStatus(pod, name string) v1.ContainerStatus {
	if p := h.pod(pod); p != nil {
		s, _ := statusByName(p.Status.EphemeralContainerStatuses, name)
		return s
	}
	return v1.ContainerStatus{}
}

// debuggedPod runs pod web (container app) on a new harness, adds the
// ephemeral container ec to it, as the ephemeralcontainers subresource does,
// and waits until ec runs.
func debuggedPod(t *testing.T, ec v1.EphemeralContainer) *harness {
	t.Helper()
	h := newHarness(t)
	h.start()
	h.create(testPod("web", ctr("app")))
	h.waitFor("app running", func() bool { return h.running("web", "app") })
	p := h.pod("web")
	p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, ec)
	if _, err := h.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor(ec.Name+" running", func() bool { return h.ephemeralStatus("web", ec.Name).State.Running != nil })
	return h
}

func TestEphemeralContainerLifecycle(t *testing.T) {
	t.Parallel()
	ec := v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon(ctr("debugger")), TargetContainerName: "app"}
	ec.Stdin, ec.TTY = true, true
	h := debuggedPod(t, ec)
	appID := h.containerID("web", "app")
	cfg := h.rt.ContainerConfig("debugger")
	if ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); ns.GetPid() != runtimeapi.NamespaceMode_TARGET || ns.GetTargetId() != appID {
		t.Errorf("debugger pid namespace %v target %q, want TARGET %q", ns.GetPid(), ns.GetTargetId(), appID)
	}
	if !h.events.Has("web", "Started", "debugger") {
		t.Error("no Started event for the debugger")
	}

	dbgID := h.containerID("web", "debugger")
	h.exit(dbgID, 2)
	h.waitFor("debugger terminated", func() bool {
		t := h.ephemeralStatus("web", "debugger").State.Terminated
		return t != nil && t.ExitCode == 2
	})
	h.clock.Step(time.Minute)
	h.settle(func() bool { return false })
	if n := h.count("web", "debugger"); n != 1 {
		t.Errorf("%d debugger containers after it exited, want 1: never restarted", n)
	}

	// A restarted berth adopts the pod as it is.
	h.stop()
	h.rt.ResetOrder()
	h.start()
	h.waitFor("status after restart", func() bool { return h.ephemeralStatus("web", "debugger").State.Terminated != nil })
	h.clock.Step(time.Minute)
	h.settle(func() bool { return false })
	if got := h.rt.Order(); len(got) != 0 {
		t.Errorf("restart changed the runtime: %v", got)
	}
}

func TestEphemeralContainerKilledWithPod(t *testing.T) {
	t.Parallel()
	h := debuggedPod(t, v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon(ctr("debugger"))})
	h.rt.ResetOrder()

	h.deletePod("web", 5)
	h.waitFor("pod deleted", func() bool { return h.pod("web") == nil })
	if order := h.rt.Order(); !slices.Contains(order, "stop:debugger") || !slices.Contains(order, "stop:app") {
		t.Errorf("stops %v, want the debugger and app stopped", order)
	}
}
