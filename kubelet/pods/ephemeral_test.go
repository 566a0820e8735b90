package pods

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/berthnode/berth/kubelet/podstatus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ephemeralStatus is the API status of the pod's ephemeral container name.
func (h *harness) ephemeralStatus(pod, name string) v1.ContainerStatus {
	if p := h.pod(pod); p != nil {
		s, _ := podstatus.StatusByName(p.Status.EphemeralContainerStatuses, name)
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
