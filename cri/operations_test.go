package cri

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

// TestInstrumentCounts checks that calls through instrumented services are
// counted under kubelet's operation types, and still reach the runtime.
func TestInstrumentCounts(t *testing.T) {
	rt := critest.NewFakeRuntimeService()
	img := critest.NewFakeImageService()
	s := Instrument(&Services{Runtime: rt, Images: img})
	ctx := t.Context()
	for range 2 {
		if _, err := s.Runtime.ListContainers(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Runtime.ListPodSandbox(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, false); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"list_containers": 2, "list_podsandbox": 1, "image_status": 1}
	got := map[string]float64{}
	for op := range want {
		var m dto.Metric
		if err := s.Operations.WithLabelValues(op).Write(&m); err != nil {
			t.Fatal(err)
		}
		got[op] = m.GetCounter().GetValue()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}
	if n := len(rt.GetCalls()); n != 3 {
		t.Errorf("runtime saw %d calls %v, want 3", n, rt.GetCalls())
	}
}
