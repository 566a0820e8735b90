package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/berthnode/berth/test/testbed"
	"github.com/berthnode/berth/test/testbed/upstream"
)

// bed is the test bed all benchmarks share (nil as non-root): node1 runs
// berth, node2 the upstream kubelet and kube-proxy.
var bed *testbed.Testbed

// The node agents the benchmarks compare, set up by setupAgents.
var berthAgent, upstreamAgent agent

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		// The package holds benchmarks only: `go test` without -bench
		// (make test) builds no bed and no upstream kubelet for them.
		os.Exit(m.Run())
	}
	os.Exit(testbed.RunTests(m, testbed.Options{Nodes: 2, Setup: setupAgents}, &bed))
}

// agent is a node and what runs it.
type agent struct {
	// name says which agent: "berth" or "kubelet".
	name string
	// node is the node it runs.
	node testbed.Node
	// programs are the first arguments of its processes on the node:
	// berth alone (its proxy included), or kubelet and kube-proxy.
	programs []string
	// users are the API identities it makes requests as.
	users []string
}

// setupAgents makes node1 a berth node and node2 an upstream node, as an
// operator would install each (see testbed.JoinNodes and upstream.Join).
func setupAgents(ctx context.Context, tb *testbed.Testbed) error {
	nodes := tb.Nodes()
	if len(nodes) != 2 {
		return fmt.Errorf("bench bed: %d nodes, want 2", len(nodes))
	}
	binDir, err := upstream.BinDir(ctx)
	if err != nil {
		return err
	}
	binary, err := testbed.BuildBerth(ctx, tb.RunDir())
	if err != nil {
		return err
	}
	if err := tb.ApplyBerthRBAC(ctx, binary); err != nil {
		return err
	}
	if err := tb.InstallBerth(nodes[0].Name, binary); err != nil {
		return err
	}
	if _, err := tb.StartBerth(nodes[0].Name); err != nil {
		return err
	}
	if err := tb.Join(ctx, nodes[0].Name); err != nil {
		return fmt.Errorf("join %s: %w", nodes[0].Name, err)
	}
	proxyConfig, err := upstream.Prepare(ctx, tb)
	if err != nil {
		return err
	}
	if err := upstream.JoinNode(ctx, tb, nodes[1], binDir, proxyConfig, os.Stderr); err != nil {
		return err
	}
	berthAgent = agent{
		name: "berth", node: nodes[0],
		programs: []string{berthArgv0},
		users:    []string{"system:node:" + nodes[0].Name},
	}
	upstreamAgent = agent{
		name: "kubelet", node: nodes[1],
		programs: []string{upstream.KubeletPath, upstream.KubeProxyPath},
		users:    []string{"system:node:" + nodes[1].Name, "system:serviceaccount:kube-system:kube-proxy"},
	}
	return nil
}

// berthArgv0 is how StartBerth starts berth: as kubeadm's kubelet.
const berthArgv0 = "/usr/local/bin/kubelet"
