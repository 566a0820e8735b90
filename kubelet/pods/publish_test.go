package pods

import (
	"strings"
	"testing"

	k8stesting "k8s.io/client-go/testing"
)

// statusPatches returns the status patches sent for the pod.
func (h *harness) statusPatches(pod string) []string {
	var out []string
	for _, a := range h.client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetSubresource() == "status" && p.GetName() == pod {
			out = append(out, string(p.GetPatch()))
		}
	}
	return out
}

func TestFastPodSkipsContainerCreating(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	h.create(testPod("quick", ctr("app")))
	// The clock stands still: the first status waits, and the pod runs
	// before it is due.
	h.eventually("app running", func() bool { return h.running("quick", "app") })
	for _, p := range h.statusPatches("quick") {
		if strings.Contains(p, "ContainerCreating") {
			t.Errorf("a pod that started at once was shown ContainerCreating first: %s", p)
		}
	}
}

func TestSlowSandboxShowsContainerCreating(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	gate := make(chan struct{})
	h.rt.mu.Lock()
	h.rt.sandboxGate = gate
	h.rt.mu.Unlock()
	h.start()
	h.create(testPod("slow", ctr("app")))
	// The sandbox hangs: once the delay has passed, the first status says
	// the container is being created.
	start := h.clock.Now()
	h.waitFor("ContainerCreating", func() bool { return h.waitingReason("slow", "app") == "ContainerCreating" })
	if waited := h.clock.Since(start); waited < backgroundPublishDelay {
		t.Errorf("ContainerCreating shown after %v, before the %v delay", waited, backgroundPublishDelay)
	}
	close(gate)
	h.eventually("app running", func() bool { return h.running("slow", "app") })
}
