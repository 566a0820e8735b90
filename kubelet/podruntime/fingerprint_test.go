package podruntime

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/kubelet/relist"
)

// TestFingerprintMatchesRelist: what a worker observed is summed up as the
// relist sums up the same sandboxes and containers, whatever their order.
func TestFingerprintMatchesRelist(t *testing.T) {
	rt := &PodState{
		Sandboxes: []*SandboxState{{ID: "s2", Ready: true}, {ID: "s1"}},
		Containers: []*ContainerState{
			{ID: "c2", State: runtimeapi.ContainerState_CONTAINER_RUNNING},
			{ID: "c1", State: runtimeapi.ContainerState_CONTAINER_EXITED},
		},
	}
	var want relist.Fingerprint
	want.Container("c1", runtimeapi.ContainerState_CONTAINER_EXITED)
	want.Sandbox("s1", runtimeapi.PodSandboxState_SANDBOX_NOTREADY)
	want.Container("c2", runtimeapi.ContainerState_CONTAINER_RUNNING)
	want.Sandbox("s2", runtimeapi.PodSandboxState_SANDBOX_READY)
	if got := rt.Fingerprint(); got != want.String() {
		t.Errorf("Fingerprint = %q, want %q", got, want.String())
	}
}
