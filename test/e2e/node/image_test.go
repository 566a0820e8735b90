package node

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/test/testbed"
)

// TestSandboxImageProvided checks that berth imported its embedded pause
// image under the runtime's sandbox image name, which the bed left out.
func TestSandboxImageProvided(t *testing.T) {
	testbed.Require(t, bed)
	for _, n := range bed.Nodes() {
		client, err := cri.Dial(n.CRIEndpoint)
		if err != nil {
			t.Fatal(err)
		}
		st, err := client.Image.ImageStatus(t.Context(), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: sandboxImage}})
		client.Close()
		if err != nil {
			t.Fatalf("%s: image status: %v", n.Name, err)
		}
		if st.Image == nil {
			t.Errorf("%s: sandbox image %s missing: berth did not import its pause image", n.Name, sandboxImage)
		}
	}
}
