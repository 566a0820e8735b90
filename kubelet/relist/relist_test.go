package relist

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/cri"
)

func TestRelist(t *testing.T) {
	ctx := context.Background()
	rt := critest.NewFakeRuntimeService()
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r := New(rt, clk)
	if err := r.Healthy(); err == nil {
		t.Error("healthy before the first relist")
	}
	labels := map[string]string{cri.LabelPodUID: "u1"}
	sbCfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Uid: "u1", Namespace: "ns"}, Labels: labels}
	sb, err := rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	// Not berth's: no pod UID label.
	if _, err := rt.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "x", Uid: "x"}}, ""); err != nil {
		t.Fatal(err)
	}
	res, err := r.Relist(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Listed) != 1 || !res.Listed["u1"] || len(res.Gone) != 0 {
		t.Fatalf("first relist %+v, want u1 new", res)
	}
	if err := r.Healthy(); err != nil || r.RunningPods() != 1 {
		t.Errorf("healthy %v, running pods %d; want nil, 1", err, r.RunningPods())
	}

	res, _ = r.Relist(ctx)
	if res.Listed["u1"] {
		t.Error("unchanged pod reported changed")
	}

	ctr, err := rt.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Image: &runtimeapi.ImageSpec{Image: "img"}, Labels: labels}, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, ctr); err != nil {
		t.Fatal(err)
	}
	if res, _ = r.Relist(ctx); !res.Listed["u1"] {
		t.Error("started container not seen as a change")
	}
	if got := r.ContainerStates()["running"]; got != 1 {
		t.Errorf("running containers %d, want 1", got)
	}
	if err := rt.StopContainer(ctx, ctr, 0); err != nil {
		t.Fatal(err)
	}
	if res, _ = r.Relist(ctx); !res.Listed["u1"] {
		t.Error("exited container not seen as a change")
	}

	if err := rt.RemoveContainer(ctx, ctr); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	res, _ = r.Relist(ctx)
	if len(res.Listed) != 0 || len(res.Gone) != 1 || res.Gone[0] != types.UID("u1") {
		t.Errorf("relist after removal %+v, want u1 gone", res)
	}

	clk.Step(Threshold + time.Second)
	if err := r.Healthy(); err == nil {
		t.Error("healthy after a stale relist")
	}
}

// TestFoundAndPrints: before the first relist nothing is known of any pod;
// after it, a pod is found when it was listed, and its fingerprint is the
// one the relist result gives.
func TestFoundAndPrints(t *testing.T) {
	ctx := context.Background()
	rt := critest.NewFakeRuntimeService()
	r := New(rt, testingclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	if _, listed := r.Found("u1"); listed {
		t.Error("listed before any relist")
	}
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Uid: "u1", Namespace: "ns"},
		Labels:   map[string]string{cri.LabelPodUID: "u1"},
	}
	sb, err := rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Relist(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found1, listed := r.Found("u1")
	found2, _ := r.Found("u2")
	if !listed || !found1 || found2 {
		t.Errorf("listed %v, found u1 %v, u2 %v; want true, true, false", listed, found1, found2)
	}
	want := Fingerprint([]string{SandboxPart(sb, runtimeapi.PodSandboxState_SANDBOX_READY)})
	if got := res.Prints["u1"]; got != want {
		t.Errorf("print of u1 %q, want %q", got, want)
	}
}
