package pods

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/kubelet/podstatus"
	"github.com/berthnode/berth/kubelet/resize"
)

// resourceUpdate is one UpdateContainerResources call.
type resourceUpdate struct {
	ID        string
	Resources *runtimeapi.LinuxContainerResources
}

func (r *recordingRuntime) UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.ContainerResources) error {
	if err := r.FakeRuntimeService.UpdateContainerResources(ctx, id, res); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, resourceUpdate{ID: id, Resources: res.GetLinux()})
	return nil
}

func (r *recordingRuntime) Updates() []resourceUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]resourceUpdate(nil), r.updates...)
}

func requirements(cpuReq, cpuLim, memReq, memLim string) v1.ResourceRequirements {
	r := v1.ResourceRequirements{Requests: v1.ResourceList{}, Limits: v1.ResourceList{}}
	for _, e := range []struct {
		list v1.ResourceList
		name v1.ResourceName
		q    string
	}{{r.Requests, v1.ResourceCPU, cpuReq}, {r.Limits, v1.ResourceCPU, cpuLim}, {r.Requests, v1.ResourceMemory, memReq}, {r.Limits, v1.ResourceMemory, memLim}} {
		if e.q != "" {
			e.list[e.name] = resource.MustParse(e.q)
		}
	}
	return r
}

func testNodeWith(cpu, mem string) *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: testNode},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{
			v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(mem),
		}},
	}
}

// resizeSpec updates the pod's container resources in the API as the
// resize subresource does, bumping its generation.
func (h *harness) resizeSpec(name string, res map[string]v1.ResourceRequirements) {
	h.t.Helper()
	p := h.pod(name)
	for i := range p.Spec.Containers {
		if r, ok := res[p.Spec.Containers[i].Name]; ok {
			p.Spec.Containers[i].Resources = r
		}
	}
	p.Generation++
	if _, err := h.client.CoreV1().Pods(p.Namespace).Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func resizeDone(p *v1.Pod) bool {
	if p == nil || p.Status.ObservedGeneration != p.Generation {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodResizePending || c.Type == v1.PodResizeInProgress {
			return false
		}
	}
	return true
}

func TestResizeUpdatesInPlaceOrRestarts(t *testing.T) {
	h := newHarness(t, testNodeWith("4", "8Gi"))
	h.start()
	small := requirements("100m", "200m", "64Mi", "128Mi")
	large := requirements("300m", "400m", "128Mi", "256Mi")
	a, b := ctr("a"), ctr("b")
	a.Resources, b.Resources = small, small
	b.ResizePolicy = []v1.ContainerResizePolicy{{ResourceName: v1.ResourceMemory, RestartPolicy: v1.RestartContainer}}
	p := testPod("r", a, b)
	p.Generation = 1
	h.create(p)
	h.waitFor("both running", func() bool { return h.running("r", "a") && h.running("r", "b") })
	if s := h.status("r", "a"); s.Resources == nil || !apiequality.Semantic.DeepEqual(*s.Resources, small) ||
		!apiequality.Semantic.DeepEqual(s.AllocatedResources, small.Requests) {
		t.Fatalf("status of a before the resize: resources %v, allocated %v", s.Resources, s.AllocatedResources)
	}
	idA := h.containerID("r", "a")

	h.resizeSpec("r", map[string]v1.ResourceRequirements{"a": large, "b": large})
	h.waitFor("resize done", func() bool {
		return resizeDone(h.pod("r")) && h.status("r", "b").RestartCount == 1 && h.running("r", "b")
	})

	s := h.status("r", "a")
	if s.Resources == nil || !apiequality.Semantic.DeepEqual(*s.Resources, large) || !apiequality.Semantic.DeepEqual(s.AllocatedResources, large.Requests) {
		t.Errorf("status of a after the resize: resources %v, allocated %v", s.Resources, s.AllocatedResources)
	}
	if s.RestartCount != 0 || h.containerID("r", "a") != idA {
		t.Errorf("a was restarted (%d restarts) though its policy is NotRequired", s.RestartCount)
	}
	var forA []*runtimeapi.LinuxContainerResources
	for _, u := range h.rt.Updates() {
		if u.ID == idA {
			forA = append(forA, u.Resources)
		}
	}
	// Memory first (CPU still the old), then CPU.
	if len(forA) != 2 || forA[0].MemoryLimitInBytes != 256<<20 || forA[0].CpuQuota != 20000 ||
		forA[1].CpuQuota != 40000 || forA[1].CpuShares != 307 || forA[1].MemoryLimitInBytes != 256<<20 {
		t.Errorf("updates of a: %v", forA)
	}
	for _, u := range h.rt.Updates() {
		if u.ID != idA {
			t.Errorf("container %s updated in place, want only a (b restarts)", u.ID)
		}
	}
	if cfg := h.rt.ContainerConfig("b"); cfg.GetLinux().GetResources().GetMemoryLimitInBytes() != 256<<20 {
		t.Errorf("b restarted with memory limit %d", cfg.GetLinux().GetResources().GetMemoryLimitInBytes())
	}
	if !h.events.Has("r", "Killing", "Container b resize requires restart") {
		t.Error("no Killing event for the restart of b")
	}
	if !h.events.Has("r", resize.EventStarted, `"generation":2`) || !h.events.Has("r", resize.EventCompleted, `"generation":2`) {
		t.Errorf("missing ResizeStarted/ResizeCompleted events: %v", h.events.List())
	}
	rec, err := resize.Store{Root: h.cfg.RootDir}.Load(p.UID)
	if err != nil || rec == nil || !apiequality.Semantic.DeepEqual(rec.Allocated["a"], large) {
		t.Errorf("record on disk %+v, %v", rec, err)
	}
}

func TestResizeDeferredUntilRoom(t *testing.T) {
	h := newHarness(t, testNodeWith("1", "8Gi"))
	h.start()
	hog, small := ctr("hog"), ctr("main")
	hog.Resources = requirements("800m", "", "", "")
	small.Resources = requirements("100m", "", "", "")
	h.create(testPod("hog", hog))
	p := testPod("r", small)
	p.Generation = 1
	h.create(p)
	h.waitFor("both running", func() bool { return h.running("r", "main") && h.running("hog", "hog") })

	h.resizeSpec("r", map[string]v1.ResourceRequirements{"main": requirements("300m", "", "", "")})
	h.waitFor("resize pending", func() bool {
		p := h.pod("r")
		return p.Status.ObservedGeneration == 2 && podstatus.FindCondition(p.Status.Conditions, v1.PodResizePending) != nil
	})
	c := podstatus.FindCondition(h.pod("r").Status.Conditions, v1.PodResizePending)
	if c.Reason != v1.PodReasonDeferred || c.ObservedGeneration != 2 ||
		c.Message != "Node didn't have enough resource: cpu, requested: 300, used: 800, capacity: 1000" {
		t.Errorf("pending condition %+v", c)
	}
	if got := h.status("r", "main").AllocatedResources[v1.ResourceCPU]; got.MilliValue() != 100 {
		t.Errorf("allocated %s while deferred, want the old 100m", &got)
	}
	if !h.events.Has("r", resize.EventDeferred, "Pod resize OutOfcpu: ") {
		t.Errorf("no ResizeDeferred event: %v", h.events.List())
	}
	if len(h.rt.Updates()) != 0 {
		t.Errorf("a deferred resize was actuated: %v", h.rt.Updates())
	}

	if err := h.client.CoreV1().Pods("default").Delete(context.Background(), "hog", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("resize done once the hog is gone", func() bool { return resizeDone(h.pod("r")) })
	if got := h.status("r", "main").AllocatedResources[v1.ResourceCPU]; got.MilliValue() != 300 {
		t.Errorf("allocated %s, want 300m", &got)
	}
}

func TestResizeBelowMemoryUsageIsAnError(t *testing.T) {
	h := newHarness(t, testNodeWith("4", "8Gi"))
	h.start()
	c := ctr("main")
	c.Resources = requirements("", "", "128Mi", "128Mi")
	p := testPod("r", c)
	p.Generation = 1
	h.create(p)
	h.waitFor("running", func() bool { return h.running("r", "main") })
	id := h.containerID("r", "main")
	h.rt.SetFakeContainerStats([]*runtimeapi.ContainerStats{{
		Attributes: &runtimeapi.ContainerAttributes{Id: id},
		Memory:     &runtimeapi.MemoryUsage{UsageBytes: &runtimeapi.UInt64Value{Value: 100 << 20}},
	}})
	h.resizeSpec("r", map[string]v1.ResourceRequirements{"main": requirements("", "", "64Mi", "64Mi")})
	h.waitFor("resize error", func() bool {
		c := podstatus.FindCondition(h.pod("r").Status.Conditions, v1.PodResizeInProgress)
		return c != nil && c.Reason == v1.PodReasonError
	})
	cond := podstatus.FindCondition(h.pod("r").Status.Conditions, v1.PodResizeInProgress)
	if !regexp.MustCompile(`memory limit \(\d+\) below current usage`).MatchString(cond.Message) || cond.ObservedGeneration != 2 {
		t.Errorf("in-progress condition %+v", cond)
	}
	// The status shows what the container still runs with.
	if s := h.status("r", "main"); s.Resources.Limits.Memory().Value() != 128<<20 || s.AllocatedResources.Name(v1.ResourceMemory, resource.BinarySI).Value() != 64<<20 {
		t.Errorf("status resources %v, allocated %v", s.Resources, s.AllocatedResources)
	}
	if len(h.rt.Updates()) != 0 {
		t.Errorf("limit set below usage: %v", h.rt.Updates())
	}
	if !h.events.Has("r", resize.EventError, "below current usage") {
		t.Errorf("no ResizeError event: %v", h.events.List())
	}
}

func TestResizeRecordGoesWithThePod(t *testing.T) {
	h := newHarness(t, testNodeWith("4", "8Gi"))
	h.start()
	p := testPod("r", ctr("main"))
	h.create(p)
	h.waitFor("running", func() bool { return h.running("r", "main") })
	file := filepath.Join(h.cfg.RootDir, "pods", string(p.UID), resize.FileName)
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("no record of the admitted pod: %v", err)
	}
	if err := h.client.CoreV1().Pods("default").Delete(context.Background(), "r", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("record removed", func() bool {
		_, err := os.Stat(file)
		return os.IsNotExist(err)
	})
}
