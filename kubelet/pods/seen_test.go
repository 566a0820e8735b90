package pods

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/relist"
)

// TestRuntimeSeen: the relist wakes a worker for what it has not seen,
// and leaves what it finds during a sync to the sync's end.
func TestRuntimeSeen(t *testing.T) {
	running := &podruntime.PodState{
		Sandboxes:  []*podruntime.SandboxState{{ID: "s1", Ready: true}},
		Containers: []*podruntime.ContainerState{{ID: "c1", State: runtimeapi.ContainerState_CONTAINER_RUNNING}},
	}
	fp := podPrint(running)
	var s runtimeSeen
	if !s.relisted("other", true) {
		t.Error("a change with nothing seen yet does not wake the worker")
	}
	s.begin()
	if s.relisted("s:s1:SANDBOX_READY", true) {
		t.Error("a change found during a sync wakes the worker at once")
	}
	s.observed(running)
	if s.end() {
		t.Error("a sync that observed the runtime wakes itself again")
	}
	if s.relisted(fp, true) {
		t.Error("the relist wakes the worker for the state its own sync observed")
	}
	if !s.relisted("s:s1:SANDBOX_NOTREADY", true) {
		t.Error("a change after the sync does not wake the worker")
	}
	s.begin()
	s.relisted("s:s1:SANDBOX_NOTREADY,c:c2:CONTAINER_EXITED", true)
	if !s.end() {
		t.Error("a sync that did not observe the runtime is not woken for the change found meanwhile")
	}
}

// TestPodPrintMatchesRelist: what a worker observed is summed up as the
// relist sums up the same sandboxes and containers, whatever their order.
func TestPodPrintMatchesRelist(t *testing.T) {
	rt := &podruntime.PodState{
		Sandboxes: []*podruntime.SandboxState{{ID: "s2", Ready: true}, {ID: "s1"}},
		Containers: []*podruntime.ContainerState{
			{ID: "c2", State: runtimeapi.ContainerState_CONTAINER_RUNNING},
			{ID: "c1", State: runtimeapi.ContainerState_CONTAINER_EXITED},
		},
	}
	want := relist.Fingerprint([]string{
		relist.ContainerPart("c1", runtimeapi.ContainerState_CONTAINER_EXITED),
		relist.SandboxPart("s1", runtimeapi.PodSandboxState_SANDBOX_NOTREADY),
		relist.ContainerPart("c2", runtimeapi.ContainerState_CONTAINER_RUNNING),
		relist.SandboxPart("s2", runtimeapi.PodSandboxState_SANDBOX_READY),
	})
	if got := podPrint(rt); got != want {
		t.Errorf("podPrint = %q, want %q", got, want)
	}
}
