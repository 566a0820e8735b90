package node

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/berthnode/berth/test/testbed"
)

// bed is the test bed all tests of this package share (nil as non-root).
var bed *testbed.Testbed

// sandboxImage is the nodes' containerd sandbox image. The bed does not
// import it: berth must, from its embedded pause image, as on an
// air-gapped node.
const sandboxImage = "registry.k8s.io/pause:3.10.1"

// joinedAt records when each node's `kubeadm join` had returned.
var joinedAt = map[string]int64{}

func TestMain(m *testing.M) {
	os.Exit(testbed.RunTests(m, testbed.Options{Nodes: 2, SandboxImage: sandboxImage, Setup: joinNodes}, &bed))
}

// joinNodes makes both nodes berth nodes with kubeadm join.
func joinNodes(ctx context.Context, tb *testbed.Testbed) error {
	if err := tb.JoinNodes(ctx, io.Discard); err != nil {
		return err
	}
	// The last join has returned: no node joined later than this.
	joined := nowUnixNano()
	for _, n := range tb.Nodes() {
		joinedAt[n.Name] = joined
	}
	return nil
}
