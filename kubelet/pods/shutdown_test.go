package pods

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestNodeShutdownStopsPodsByClass(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	h.create(testPod("web", ctr("app")))
	critical := testPod("dns", ctr("app"))
	critical.Spec.Priority = ptr.To[int32](2000001000)
	h.create(critical)
	h.waitFor("both running", func() bool { return h.running("web", "app") && h.running("dns", "app") })
	web, dns := h.containerID("web", "app"), h.containerID("dns", "app")

	h.m.SetShuttingDown(true)
	if err := h.m.StopPods(t.Context(), false, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if grace, stopped := h.rt.StopTimeout(web); !stopped || grace != 10 {
		t.Errorf("regular pod's container stopped %t with grace %d, want within the 10 s budget", stopped, grace)
	}
	if _, stopped := h.rt.StopTimeout(dns); stopped {
		t.Error("the critical pod was stopped with the regular ones")
	}
	h.waitFor("web Failed", func() bool {
		p := h.pod("web")
		return p.Status.Phase == v1.PodFailed && p.Status.Reason == shutdownReason
	})
	// Nothing starts while the node shuts down: web is not restarted, and
	// a new pod is rejected.
	h.create(testPod("late", ctr("app")))
	h.waitFor("late rejected", func() bool { return h.pod("late").Status.Reason == "NodeShutdown" })
	if n := h.count("web", "app"); n != 1 {
		t.Errorf("web has %d containers, want the stopped one only", n)
	}

	if err := h.m.StopPods(t.Context(), true, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if grace, stopped := h.rt.StopTimeout(dns); !stopped || grace != 3 {
		t.Errorf("critical pod's container stopped %t with grace %d, want within its 3 s", stopped, grace)
	}
}

func TestRunningPodList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	h.create(testPod("web", ctr("app"), ctr("side")))
	h.waitFor("both running", func() bool { return h.running("web", "app") && h.running("web", "side") })
	list, err := h.m.RunningPodList(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "web" || len(list.Items[0].Spec.Containers) != 2 {
		t.Fatalf("running pods %+v, want web with its 2 containers", list.Items)
	}
	for _, c := range list.Items[0].Status.ContainerStatuses {
		if !strings.Contains(c.ContainerID, "://") {
			t.Errorf("container %s has ID %q, want runtime://id", c.Name, c.ContainerID)
		}
	}
}
