package node

import (
	"context"
	"fmt"
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

// joinedAt records when each node's `kubeadm join` returned.
var joinedAt = map[string]int64{}

func TestMain(m *testing.M) {
	os.Exit(testbed.RunTests(m, testbed.Options{Nodes: 2, SandboxImage: sandboxImage, Setup: joinNodes}, &bed))
}

// joinNodes installs berth on every node as its kubelet, starts it as
// kubeadm's systemd unit would, and joins the node with kubeadm.
func joinNodes(ctx context.Context, tb *testbed.Testbed) error {
	dir, err := os.MkdirTemp("", "berth-e2e-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	binary, err := testbed.BuildBerth(ctx, dir)
	if err != nil {
		return err
	}
	if err := tb.ApplyBerthRBAC(ctx, binary); err != nil {
		return err
	}
	for _, n := range tb.Nodes() {
		if err := tb.InstallBerth(n.Name, binary); err != nil {
			return err
		}
		if _, err := tb.StartBerth(n.Name); err != nil {
			return err
		}
		if err := tb.Join(ctx, n.Name); err != nil {
			return fmt.Errorf("join %s: %w", n.Name, err)
		}
		joinedAt[n.Name] = nowUnixNano()
	}
	return nil
}
