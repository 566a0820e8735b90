package pods

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func osAffinity(terms ...[]v1.NodeSelectorRequirement) *v1.Affinity {
	sel := &v1.NodeSelector{}
	for _, exprs := range terms {
		sel.NodeSelectorTerms = append(sel.NodeSelectorTerms, v1.NodeSelectorTerm{MatchExpressions: exprs})
	}
	return &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: sel}}
}

func osIs(op v1.NodeSelectorOperator, values ...string) v1.NodeSelectorRequirement {
	return v1.NodeSelectorRequirement{Key: v1.LabelOSStable, Operator: op, Values: values}
}

func TestAdmit(t *testing.T) {
	zone := v1.NodeSelectorRequirement{Key: "topology.kubernetes.io/zone", Operator: v1.NodeSelectorOpIn, Values: []string{"a"}}
	outOfPods := &rejection{Reason: reasonOutOfPods, Message: "Node didn't have enough resource: pods, requested: 1, used: 2, capacity: 2"}
	affinity := &rejection{Reason: reasonNodeAffinity, Message: messageNodeAffinity}
	tests := []struct {
		name     string
		spec     func(*v1.PodSpec)
		active   int
		capacity int
		static   bool
		want     *rejection
	}{
		{name: "room left", active: 1, capacity: 2},
		{name: "full", active: 2, capacity: 2, want: outOfPods},
		{name: "no limit", active: 500, capacity: 0},
		{name: "static pod over capacity", active: 2, capacity: 2, static: true},
		{name: "windows pod", spec: func(s *v1.PodSpec) { s.OS = &v1.PodOS{Name: v1.Windows} },
			want: &rejection{Reason: reasonPodOSNotSupported, Message: messageOSNotSupported}},
		{name: "linux pod", spec: func(s *v1.PodSpec) { s.OS = &v1.PodOS{Name: v1.Linux} }},
		{name: "selects linux", spec: func(s *v1.PodSpec) { s.NodeSelector = map[string]string{v1.LabelOSStable: "linux", "disk": "ssd"} }},
		{name: "selects windows", spec: func(s *v1.PodSpec) { s.NodeSelector = map[string]string{v1.LabelOSStable: "windows"} }, want: affinity},
		{name: "other labels are the scheduler's", spec: func(s *v1.PodSpec) { s.NodeSelector = map[string]string{"disk": "ssd"} }},
		{name: "affinity In linux", spec: func(s *v1.PodSpec) {
			s.Affinity = osAffinity([]v1.NodeSelectorRequirement{osIs(v1.NodeSelectorOpIn, "linux"), zone})
		}},
		{name: "affinity In windows", spec: func(s *v1.PodSpec) {
			s.Affinity = osAffinity([]v1.NodeSelectorRequirement{osIs(v1.NodeSelectorOpIn, "windows"), zone})
		}, want: affinity},
		{name: "affinity NotIn linux", spec: func(s *v1.PodSpec) {
			s.Affinity = osAffinity([]v1.NodeSelectorRequirement{osIs(v1.NodeSelectorOpNotIn, "linux")})
		}, want: affinity},
		{name: "one of the terms allows linux", spec: func(s *v1.PodSpec) {
			s.Affinity = osAffinity([]v1.NodeSelectorRequirement{osIs(v1.NodeSelectorOpIn, "windows")},
				[]v1.NodeSelectorRequirement{osIs(v1.NodeSelectorOpExists)})
		}},
		{name: "a term without OS may match", spec: func(s *v1.PodSpec) {
			s.Affinity = osAffinity([]v1.NodeSelectorRequirement{osIs(v1.NodeSelectorOpIn, "windows")},
				[]v1.NodeSelectorRequirement{zone})
		}},
		{name: "full and windows: the pod count comes first", active: 2, capacity: 2,
			spec: func(s *v1.PodSpec) { s.NodeSelector = map[string]string{v1.LabelOSStable: "windows"} }, want: outOfPods},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod("p", ctr("app"))
			if tc.spec != nil {
				tc.spec(&pod.Spec)
			}
			got := admit(pod, tc.active, tc.capacity, tc.static)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("admit (-want +got):\n%s", diff)
			}
		})
	}
}

// sandboxesOf counts the sandboxes ever made for the pod.
func (h *harness) sandboxesOf(pod string) int {
	n := 0
	for _, sb := range h.rt.SandboxConfigs() {
		if sb.Metadata.Name == pod {
			n++
		}
	}
	return n
}

func (h *harness) phase(pod string) v1.PodPhase {
	if p := h.pod(pod); p != nil {
		return p.Status.Phase
	}
	return ""
}

func TestMaxPods(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.cfg.Kubelet.MaxPods = 2
	h.start()
	h.create(testPod("a", ctr("app-a")))
	h.create(testPod("b", ctr("app-b")))
	h.waitFor("a and b running", func() bool { return h.running("a", "app-a") && h.running("b", "app-b") })

	h.create(testPod("c", ctr("app-c")))
	h.waitFor("c rejected", func() bool { return h.phase("c") == v1.PodFailed })
	const full = "Node didn't have enough resource: pods, requested: 1, used: 2, capacity: 2"
	c := h.pod("c")
	if c.Status.Reason != reasonOutOfPods || c.Status.Message != "Pod was rejected: "+full {
		t.Errorf("c status reason %q message %q", c.Status.Reason, c.Status.Message)
	}
	if !h.events.Has("c", reasonOutOfPods, full) {
		t.Errorf("no %s event with message %q: %+v", reasonOutOfPods, full, h.events.List())
	}

	// A pod being deleted holds its place until it has stopped.
	h.rt.SetFailStop("app-a", errBoom)
	a := h.pod("a")
	now := metav1.NewTime(h.clock.Now())
	a.DeletionTimestamp, a.DeletionGracePeriodSeconds = &now, ptr.To[int64](30)
	if _, err := h.client.CoreV1().Pods("default").Update(context.Background(), a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a stopping", func() bool { return h.events.Has("a", "Killing", "app-a") })
	h.create(testPod("d", ctr("app-d")))
	h.waitFor("d rejected", func() bool { return h.phase("d") == v1.PodFailed })
	if got := h.pod("d").Status.Message; !strings.Contains(got, "used: 2") {
		t.Errorf("d message %q, want a still stopping pod counted", got)
	}
	h.rt.SetFailStop("app-a", nil)
	h.waitFor("a deleted", func() bool { return h.pod("a") == nil })
	h.create(testPod("e", ctr("app-e")))
	h.waitFor("e running", func() bool { return h.running("e", "app-e") })

	// Rejections are final: c and d stay failed although there is room now.
	h.clock.Step(2 * time.Minute)
	h.settle(func() bool { return false })
	for _, name := range []string{"c", "d"} {
		if h.phase(name) != v1.PodFailed || h.sandboxesOf(name) != 0 {
			t.Errorf("rejected pod %s: phase %s, %d sandboxes", name, h.phase(name), h.sandboxesOf(name))
		}
	}
}

func TestNodeAffinityRejects(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start()
	win := testPod("win", ctr("app"))
	win.Spec.NodeSelector = map[string]string{v1.LabelOSStable: "windows"}
	lin := testPod("lin", ctr("app"))
	lin.Spec.Affinity = osAffinity([]v1.NodeSelectorRequirement{osIs(v1.NodeSelectorOpIn, "linux")})
	h.create(win)
	h.create(lin)
	h.waitFor("linux pod running", func() bool { return h.running("lin", "app") })
	h.waitFor("windows pod rejected", func() bool { return h.phase("win") == v1.PodFailed })
	if got := h.pod("win").Status; got.Reason != reasonNodeAffinity || got.Message != rejectedPrefix+messageNodeAffinity {
		t.Errorf("status reason %q message %q", got.Reason, got.Message)
	}
	if !h.events.Has("win", reasonNodeAffinity, messageNodeAffinity) || h.sandboxesOf("win") != 0 {
		t.Error("windows pod: no event, or it ran")
	}
}

// TestAdmissionAfterRestart: after a restart the pods are admitted oldest
// first, so a pod created meanwhile cannot take the place of running ones.
func TestAdmissionAfterRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.cfg.Kubelet.MaxPods = 2
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, name := range []string{"a", "b"} {
		p := testPod(name, ctr("app"))
		p.CreationTimestamp = metav1.NewTime(base.Add(time.Duration(i) * time.Minute))
		h.create(p)
	}
	h.start()
	h.waitFor("a and b running", func() bool { return h.running("a", "app") && h.running("b", "app") })
	h.stop()

	c := testPod("c", ctr("app"))
	c.CreationTimestamp = metav1.NewTime(base.Add(time.Hour))
	h.create(c)
	h.rt.ResetOrder()
	h.start()
	h.waitFor("c rejected", func() bool { return h.phase("c") == v1.PodFailed })
	h.clock.Step(5 * time.Second)
	h.settle(func() bool { return false })
	if got := h.rt.Order(); len(got) != 0 {
		t.Errorf("restart changed the runtime: %v", got)
	}
}
