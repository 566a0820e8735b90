package relist

import (
	"context"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/cri"
)

// TestHeldNothingAndPrints: before the first relist nothing is known of any
// pod; after it, a pod is held when it was listed, and its fingerprint is
// the one the relist result gives.
func TestHeldNothingAndPrints(t *testing.T) {
	ctx := context.Background()
	rt := critest.NewFakeRuntimeService()
	r := New(rt, testingclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	if r.HeldNothing("u1") {
		t.Error("HeldNothing before any relist = true, want false")
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
	if r.HeldNothing("u1") || !r.HeldNothing("u2") {
		t.Errorf("HeldNothing u1 %v, u2 %v; want false, true", r.HeldNothing("u1"), r.HeldNothing("u2"))
	}
	var want Fingerprint
	want.Sandbox(sb, runtimeapi.PodSandboxState_SANDBOX_READY)
	if got := res.Prints["u1"]; got != want.String() {
		t.Errorf("print of u1 %q, want %q", got, want.String())
	}
}
