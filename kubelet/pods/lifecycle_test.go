package pods

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/podstatus"
	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func TestInitContainersAndSidecarStartInOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	pod := testPod("web", ctr("app"))
	sidecar := ctr("proxy")
	sidecar.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
	pod.Spec.InitContainers = []v1.Container{ctr("setup"), sidecar, ctr("migrate")}
	h.create(pod)

	h.waitFor("setup running", func() bool { return h.running("web", "setup") })
	if got := h.waitingReason("web", "app"); got != podstatus.ReasonPodInitializing {
		t.Errorf("app waits with %q, want %s", got, podstatus.ReasonPodInitializing)
	}
	if h.count("web", "proxy") != 0 || h.count("web", "migrate") != 0 {
		t.Fatal("containers after the first init container started before it finished")
	}
	if p := h.pod("web"); p.Status.Phase != v1.PodPending {
		t.Errorf("phase %s while initializing, want Pending", p.Status.Phase)
	}

	h.exit(h.containerID("web", "setup"), 0)
	h.waitFor("migrate running", func() bool { return h.running("web", "migrate") })
	if !h.running("web", "proxy") {
		t.Fatal("sidecar not running while the next init container runs")
	}
	if h.count("web", "app") != 0 {
		t.Fatal("app started before the init containers finished")
	}

	h.exit(h.containerID("web", "migrate"), 0)
	h.waitFor("app running", func() bool { return h.running("web", "app") })

	want := []string{"runSandbox", "create:setup", "start:setup", "create:proxy", "start:proxy",
		"create:migrate", "start:migrate", "create:app", "start:app"}
	if diff := cmp.Diff(want, h.rt.Order()); diff != "" {
		t.Errorf("runtime calls (-want +got):\n%s", diff)
	}
	p := h.pod("web")
	if p.Status.Phase != v1.PodRunning {
		t.Errorf("phase %s, want Running", p.Status.Phase)
	}
	for _, c := range []v1.PodConditionType{v1.PodInitialized, v1.ContainersReady, v1.PodReady, v1.PodReadyToStartContainers} {
		if cond := podstatus.FindCondition(p.Status.Conditions, c); cond == nil || cond.Status != v1.ConditionTrue {
			t.Errorf("condition %s = %+v, want True", c, cond)
		}
	}
	if s := h.status("web", "setup"); s.State.Terminated == nil || s.State.Terminated.Reason != podstatus.ReasonCompleted || !s.Ready {
		t.Errorf("setup status %+v, want terminated Completed and ready", s)
	}
	for _, e := range []string{"Created", "Started"} {
		if !h.events.Has("web", e, "app") {
			t.Errorf("no %s event for app", e)
		}
	}
}

func TestCrashLoopBackOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	h.create(testPod("crash", ctr("app")))
	h.waitFor("app running", func() bool { return h.running("crash", "app") })

	// The first crash restarts at once.
	h.exit(h.containerID("crash", "app"), 1)
	h.waitFor("first restart", func() bool { return h.status("crash", "app").RestartCount == 1 && h.running("crash", "app") })

	// Then 10 s, 20 s, 40 s of back-off.
	for i, wait := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
		restarts := int32(i + 2)
		h.exit(h.containerID("crash", "app"), 1)
		h.clock.Step(time.Second)
		h.waitFor("CrashLoopBackOff", func() bool { return h.waitingReason("crash", "app") == podruntime.ReasonCrashLoopBackOff })
		s := h.status("crash", "app")
		if s.LastTerminationState.Terminated == nil || s.LastTerminationState.Terminated.ExitCode != 1 {
			t.Errorf("lastState %+v, want terminated with exit code 1", s.LastTerminationState)
		}
		h.clock.Step(wait - 3*time.Second)
		if h.settle(func() bool { return h.count("crash", "app") > 1 && h.containerAttempt("crash", "app") == restarts }) {
			t.Fatalf("restart %d came before its %s back-off", restarts, wait)
		}
		h.waitFor("restart after back-off", func() bool { return h.running("crash", "app") && h.status("crash", "app").RestartCount == restarts })
	}
	if !h.events.Has("crash", "BackOff", "Back-off restarting failed container app") {
		t.Error("no BackOff event")
	}

	// Ten minutes of running resets the back-off: the next crash restarts at once.
	h.clock.Step(11 * time.Minute)
	h.exit(h.containerID("crash", "app"), 1)
	h.clock.Step(time.Second)
	h.waitFor("immediate restart", func() bool { return h.running("crash", "app") && h.status("crash", "app").RestartCount == 5 })
}

// containerAttempt returns the attempt of the newest container named name.
func (h *harness) containerAttempt(pod, name string) int32 {
	if cfg := h.rt.ContainerConfig(name); cfg != nil {
		return int32(cfg.Metadata.Attempt)
	}
	return -1
}

func TestRestartPolicyNeverFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	pod := testPod("job", ctr("work"), ctr("helper"))
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	h.create(pod)
	h.waitFor("both running", func() bool { return h.running("job", "work") && h.running("job", "helper") })

	h.exit(h.containerID("job", "work"), 3)
	h.waitFor("work terminated", func() bool { return h.status("job", "work").State.Terminated != nil })
	if p := h.pod("job"); p.Status.Phase != v1.PodRunning {
		t.Errorf("phase %s while helper runs, want Running", p.Status.Phase)
	}
	h.exit(h.containerID("job", "helper"), 0)
	h.waitFor("pod failed", func() bool { return h.pod("job").Status.Phase == v1.PodFailed })
	s := h.status("job", "work")
	if s.State.Terminated.ExitCode != 3 || s.State.Terminated.Reason != podstatus.ReasonError || s.RestartCount != 0 {
		t.Errorf("work status %+v, want exit code 3, reason Error, no restart", s.State.Terminated)
	}
	h.waitFor("volumes torn down", func() bool { return h.volumes.TornDown(pod.UID) })
	if !slices.Contains(h.rt.Order(), "stopSandbox") {
		t.Error("sandbox of the finished pod not stopped")
	}
	if h.count("job", "work") != 1 {
		t.Error("a Never pod's container was restarted")
	}
	p := h.pod("job")
	if c := podstatus.FindCondition(p.Status.Conditions, v1.PodReady); c == nil || c.Status != v1.ConditionFalse {
		t.Errorf("Ready = %+v, want False", c)
	}
}

func TestOnFailureSucceeds(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	pod := testPod("batch", ctr("work"))
	pod.Spec.RestartPolicy = v1.RestartPolicyOnFailure
	h.create(pod)
	h.waitFor("running", func() bool { return h.running("batch", "work") })
	h.exit(h.containerID("batch", "work"), 2)
	h.waitFor("restarted", func() bool { return h.running("batch", "work") && h.status("batch", "work").RestartCount == 1 })
	h.exit(h.containerID("batch", "work"), 0)
	h.waitFor("succeeded", func() bool { return h.pod("batch").Status.Phase == v1.PodSucceeded })
	if s := h.status("batch", "work"); s.State.Terminated == nil || s.State.Terminated.Reason != podstatus.ReasonCompleted {
		t.Errorf("status %+v, want terminated Completed", s.State)
	}
}

func TestGracefulDeletion(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	pod := testPod("web", ctr("app"))
	sidecar := ctr("proxy")
	sidecar.RestartPolicy = ptr.To(v1.ContainerRestartPolicyAlways)
	pod.Spec.InitContainers = []v1.Container{sidecar}
	h.create(pod)
	h.waitFor("app running", func() bool { return h.running("web", "app") })
	appID := h.containerID("web", "app")
	h.rt.ResetOrder()

	p := h.pod("web")
	now := metav1.NewTime(h.clock.Now().Add(20 * time.Second))
	p.DeletionTimestamp = &now
	p.DeletionGracePeriodSeconds = ptr.To[int64](20)
	if _, err := h.client.CoreV1().Pods("default").Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("pod deleted", func() bool { return h.pod("web") == nil })

	if got, _ := h.rt.StopTimeout(appID); got != 20 {
		t.Errorf("StopContainer timeout %d, want 20", got)
	}
	order := h.rt.Order()
	want := []string{"stop:app", "stop:proxy", "stopSandbox"}
	if diff := cmp.Diff(want, order[:min(3, len(order))]); diff != "" {
		t.Errorf("stop order (-want +got):\n%s\nall: %v", diff, order)
	}
	if !slices.Contains(order, "removeSandbox") {
		t.Errorf("sandbox not removed: %v", order)
	}
	if !h.volumes.TornDown(pod.UID) {
		t.Error("volumes not torn down")
	}
	if !h.events.Has("web", "Killing", "Stopping container app") {
		t.Error("no Killing event")
	}
	var del k8stesting.DeleteActionImpl
	for _, a := range h.client.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok && d.Name == "web" {
			del = d
		}
	}
	opts := del.DeleteOptions
	if opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 0 ||
		opts.Preconditions == nil || opts.Preconditions.UID == nil || *opts.Preconditions.UID != pod.UID {
		t.Errorf("delete options %+v, want grace 0 and the pod's UID as precondition", opts)
	}
	h.waitFor("runtime empty", func() bool {
		h.rt.Lock()
		defer h.rt.Unlock()
		return len(h.rt.Containers) == 0 && len(h.rt.Sandboxes) == 0
	})
}

func TestPodRemovedFromAPIIsTornDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	pod := testPod("gone", ctr("app"))
	h.create(pod)
	h.waitFor("app running", func() bool { return h.running("gone", "app") })
	if err := h.client.CoreV1().Pods("default").Delete(context.Background(), "gone", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("runtime empty", func() bool { return h.count("gone", "app") == 0 && h.volumes.TornDown(pod.UID) })
}

func TestAdoptOnRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	pod := testPod("web", ctr("app"))
	pod.Spec.InitContainers = []v1.Container{ctr("setup")}
	h.create(pod)
	h.waitFor("setup running", func() bool { return h.running("web", "setup") })
	h.exit(h.containerID("web", "setup"), 0)
	h.waitFor("app running", func() bool { return h.running("web", "app") })
	h.exit(h.containerID("web", "app"), 1)
	h.waitFor("app restarted", func() bool { return h.running("web", "app") && h.status("web", "app").RestartCount == 1 })
	h.stop()

	before := h.calls("ContainerStatus")
	h.rt.ResetOrder()
	h.start()
	h.waitFor("second manager synced the pod", func() bool { return h.calls("ContainerStatus") > before })
	h.clock.Step(5 * time.Second)
	h.settle(func() bool { return false })
	if got := h.rt.Order(); len(got) != 0 {
		t.Errorf("second manager changed the runtime: %v", got)
	}
	if s := h.status("web", "app"); s.RestartCount != 1 || s.State.Running == nil {
		t.Errorf("app status after restart %+v, want running with 1 restart", s)
	}
}

func TestOrphanSandboxRemoved(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	orphan := testPod("old", ctr("app"))
	sbCfg, err := podruntime.SandboxConfig(orphan, 0, podruntime.SandboxParams{CgroupDriver: "cgroupfs", CgroupsPerQOS: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sb, err := h.rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	c := ctr("app")
	cfg, err := podruntime.ContainerConfig(podruntime.ContainerParams{Pod: orphan, Container: &c, ImageRef: c.Image, Env: &podruntime.EnvVars{}}, podruntime.ResourceParams{}, "/")
	if err != nil {
		t.Fatal(err)
	}
	id, err := h.rt.CreateContainer(ctx, sb, cfg, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	// A pod the API server knows, running too, must stay.
	h.create(testPod("kept", ctr("app")))
	h.start()
	h.waitFor("orphan removed", func() bool {
		h.rt.Lock()
		defer h.rt.Unlock()
		_, c := h.rt.Containers[id]
		_, s := h.rt.Sandboxes[sb]
		return !c && !s
	})
	h.waitFor("orphan volumes torn down", func() bool { return h.volumes.TornDown(orphan.UID) })
	h.waitFor("kept running", func() bool { return h.running("kept", "app") })
}

func TestFailingPodsDoNotBlockOthers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	h.images.SetFail("registry.example/missing:1.0", errBoom)
	bad := ctr("app")
	bad.Image = "registry.example/missing:1.0"
	h.create(testPod("unknown-image", bad))
	h.create(testPod("bad-command", ctr("app")))
	h.rt.mu.Lock()
	h.rt.failStart["boom"] = errBoom
	h.rt.mu.Unlock()
	boom := ctr("boom")
	h.create(testPod("bad-command2", boom))
	nonRoot := ctr("app")
	nonRoot.SecurityContext = &v1.SecurityContext{RunAsNonRoot: ptr.To(true)}
	h.create(testPod("root-image", nonRoot))
	h.volumes.mu.Lock()
	h.volumes.panicFor["panics"] = true
	h.volumes.fail["no-volume"] = errBoom
	h.volumes.mu.Unlock()
	h.create(testPod("panics", ctr("app")))
	h.create(testPod("no-volume", ctr("app")))
	h.create(testPod("good", ctr("app")))

	h.waitFor("good running", func() bool { return h.running("good", "app") })
	h.waitFor("ErrImagePull", func() bool { return h.waitingReason("unknown-image", "app") == podruntime.ReasonErrImagePull })
	if !h.events.Has("unknown-image", "Failed", "Failed to pull image") {
		t.Error("no Failed event for the image pull")
	}
	h.waitFor("RunContainerError or CrashLoopBackOff", func() bool {
		r := h.waitingReason("bad-command2", "boom")
		return r == podruntime.ReasonRunError || r == podruntime.ReasonCrashLoopBackOff
	})
	if !h.events.Has("bad-command2", "Failed", "boom") {
		t.Error("no Failed event for the start error")
	}
	h.waitFor("CreateContainerConfigError", func() bool { return h.waitingReason("root-image", "app") == podruntime.ReasonCreateConfigError })
	if s := h.status("root-image", "app"); s.State.Waiting == nil || s.State.Waiting.Message == "" {
		t.Errorf("no message for the non-root violation: %+v", s.State)
	}
	if !h.events.Has("root-image", "Failed", "runAsNonRoot") {
		t.Error("no Failed event for the non-root violation")
	}
	h.waitFor("FailedMount", func() bool { return h.events.Has("no-volume", "FailedMount", "boom") })
	if got := h.waitingReason("no-volume", "app"); got != podstatus.ReasonContainerCreating {
		t.Errorf("pod without volumes waits with %q, want %s", got, podstatus.ReasonContainerCreating)
	}
	// Later the image appears: the pull back-off gives way.
	h.waitFor("ImagePullBackOff", func() bool { return h.waitingReason("unknown-image", "app") == podruntime.ReasonImagePullBackOff })
	h.images.SetFail("registry.example/missing:1.0", nil)
	h.waitFor("image pulled after back-off", func() bool { return h.running("unknown-image", "app") })
	if !h.running("good", "app") || !h.running("bad-command", "app") {
		t.Error("healthy pods disturbed")
	}
}
