package cri_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/cri"
	critesting "github.com/berthnode/berth/cri/testing"
)

// lookupFixture: pod default/web was created twice (UIDs u1, then u2; u2's
// sandbox was recreated, attempt 1 at the same time as attempt 0), pod
// default/other lives beside it. Container app of u2 ran three times.
func lookupFixture() *critesting.Runtime {
	rt := critesting.NewRuntime()
	rt.AddSandbox(critesting.Sandbox{ID: "sb-u1", Namespace: "default", Name: "web", UID: "u1", CreatedAt: 10, NotReady: true})
	rt.AddSandbox(critesting.Sandbox{ID: "sb-u2-0", Namespace: "default", Name: "web", UID: "u2", CreatedAt: 20, NotReady: true})
	rt.AddSandbox(critesting.Sandbox{ID: "sb-u2-1", Namespace: "default", Name: "web", UID: "u2", CreatedAt: 20, Attempt: 1})
	rt.AddSandbox(critesting.Sandbox{ID: "sb-other", Namespace: "default", Name: "other", UID: "u3", CreatedAt: 30})
	rt.AddSandbox(critesting.Sandbox{ID: "sb-kube", Namespace: "kube-system", Name: "web", UID: "u4", CreatedAt: 40})
	exited := runtimeapi.ContainerState_CONTAINER_EXITED
	rt.AddContainer(critesting.Container{ID: "u1-app", SandboxID: "sb-u1", Name: "app", State: exited, CreatedAt: 11})
	rt.AddContainer(critesting.Container{ID: "app-0", SandboxID: "sb-u2-0", Name: "app", State: exited, CreatedAt: 21})
	// Created at the same time as app-0: the higher restart count is newer.
	rt.AddContainer(critesting.Container{ID: "app-1", SandboxID: "sb-u2-0", Name: "app", Attempt: 1, State: exited, CreatedAt: 21})
	rt.AddContainer(critesting.Container{ID: "app-2", SandboxID: "sb-u2-1", Name: "app", Attempt: 2,
		State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: 25})
	rt.AddContainer(critesting.Container{ID: "side", SandboxID: "sb-u2-1", Name: "sidecar", CreatedAt: 26})
	rt.AddContainer(critesting.Container{ID: "other-app", SandboxID: "sb-other", Name: "app", CreatedAt: 31})
	return rt
}

func sandboxIDs(sbs []*runtimeapi.PodSandbox) []string {
	var out []string
	for _, sb := range sbs {
		out = append(out, sb.Id)
	}
	return out
}

func TestPodSandboxes(t *testing.T) {
	rt := lookupFixture()
	got, err := cri.PodSandboxes(context.Background(), rt, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"sb-u2-1", "sb-u2-0", "sb-u1"}, sandboxIDs(got)); diff != "" {
		t.Errorf("sandboxes, newest first (-want +got):\n%s", diff)
	}
	if uid := cri.SandboxUID(got[0]); uid != "u2" {
		t.Errorf("UID of the newest sandbox %q, want u2", uid)
	}
	got, err = cri.PodSandboxes(context.Background(), rt, "default", "nope")
	if err != nil || len(got) != 0 {
		t.Errorf("sandboxes of an unknown pod: %v, %v; want none", sandboxIDs(got), err)
	}

	boom := errors.New("boom")
	rt.InjectError("ListPodSandbox", boom)
	if _, err := cri.PodSandboxes(context.Background(), rt, "default", "web"); !errors.Is(err, boom) {
		t.Errorf("error %v, want it to wrap the runtime's", err)
	}
}

func TestSandboxUIDFromLabel(t *testing.T) {
	sb := &runtimeapi.PodSandbox{Labels: map[string]string{cri.LabelPodUID: "from-label"}}
	if uid := cri.SandboxUID(sb); uid != "from-label" {
		t.Errorf("SandboxUID = %q, want the label's", uid)
	}
}

func TestNewestPerPod(t *testing.T) {
	rt := lookupFixture()
	all, err := rt.ListPodSandbox(context.Background(), &runtimeapi.PodSandboxFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := sandboxIDs(cri.NewestPerPod(all))
	if diff := cmp.Diff([]string{"sb-kube", "sb-other", "sb-u2-1"}, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("newest per pod (-want +got):\n%s", diff)
	}
}

func TestContainerInstances(t *testing.T) {
	rt := lookupFixture()
	tests := []struct {
		name string
		q    cri.InstanceQuery
		want []string
	}{
		{name: "every sandbox of the pod", q: cri.InstanceQuery{Name: "app", PodUID: "u2"}, want: []string{"app-2", "app-1", "app-0"}},
		{name: "one sandbox", q: cri.InstanceQuery{Name: "app", SandboxID: "sb-u2-0"}, want: []string{"app-1", "app-0"}},
		{name: "another container", q: cri.InstanceQuery{Name: "sidecar", PodUID: "u2"}, want: []string{"side"}},
		{name: "unknown container", q: cri.InstanceQuery{Name: "nope", PodUID: "u2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cri.ContainerInstances(context.Background(), rt, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, c := range got {
				ids = append(ids, c.Id)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("instances, newest first (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRestartCount(t *testing.T) {
	for _, tt := range []struct {
		annotations map[string]string
		want        int64
	}{
		{annotations: map[string]string{cri.AnnotationRestartCount: "3"}, want: 3},
		{annotations: map[string]string{cri.AnnotationRestartCount: "many"}},
		{},
	} {
		if got := cri.RestartCount(&runtimeapi.Container{Annotations: tt.annotations}); got != tt.want {
			t.Errorf("RestartCount(%v) = %d, want %d", tt.annotations, got, tt.want)
		}
	}
}
