package node

import (
	"context"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/kubelet/atomicfile"
	"github.com/berthnode/berth/test/testbed"
)

// Where the bed's containerd reads its configuration, and the socket the
// test moves it to, on the node.
const (
	containerdConfig = "/run/berth/containerd.toml"
	altSocketDir     = "/run/berth/cri"
	altSocket        = altSocketDir + "/containerd.sock"
)

// TestRuntimeEndpointFromKubeletConfig moves a node's containerd to a
// socket other than the default, and names it only where kubeadm 1.27+
// does: containerRuntimeEndpoint in /var/lib/kubelet/config.yaml (not in
// kubeadm-flags.env, not in berth's configuration). Started again, berth
// dials that socket: the node sends a fresh Ready heartbeat and a new pod
// runs. It stops containerd and berth: it runs after the restart tests.
func TestRuntimeEndpointFromKubeletConfig(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ns := testNamespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[1].Name
	path := func(p string) string {
		t.Helper()
		hp, err := bed.HostPath(node, p)
		if err != nil {
			t.Fatal(err)
		}
		return hp
	}
	if flags, err := os.ReadFile(path("/var/lib/kubelet/kubeadm-flags.env")); err == nil && strings.Contains(string(flags), "container-runtime-endpoint") {
		t.Fatalf("kubeadm-flags.env names the runtime endpoint; the test needs kubeadm 1.27+'s, which does not:\n%s", flags)
	}
	kubeletConfig, err := os.ReadFile(path("/var/lib/kubelet/config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	containerdToml, err := os.ReadFile(path(containerdConfig))
	if err != nil {
		t.Fatal(err)
	}

	stopNode(t, node)
	t.Cleanup(func() { restoreNode(t, node, kubeletConfig, containerdToml) })
	if err := os.MkdirAll(path(altSocketDir), 0o755); err != nil {
		t.Fatal(err)
	}
	moved := regexp.MustCompile(`(?m)^  address = ".*"$`).ReplaceAll(containerdToml, []byte(`  address = "`+altSocket+`"`))
	if string(moved) == string(containerdToml) {
		t.Fatalf("no grpc address in %s:\n%s", containerdConfig, containerdToml)
	}
	writeNodeFile(t, path(containerdConfig), moved)
	endpointLine := regexp.MustCompile(`(?m)^containerRuntimeEndpoint: .*\n`)
	edited := endpointLine.ReplaceAll(kubeletConfig, nil)
	edited = append(edited, []byte("containerRuntimeEndpoint: unix://"+altSocket+"\n")...)
	writeNodeFile(t, path("/var/lib/kubelet/config.yaml"), edited)
	if _, err := bed.Start(node, "containerd", "containerd", "--config", containerdConfig); err != nil {
		t.Fatal(err)
	}
	waitCRI(ctx, t, path(altSocket))
	if _, err := os.Stat(path("/run/containerd/containerd.sock")); err == nil {
		// containerd leaves its socket file behind: nothing listens there.
		if err := os.Remove(path("/run/containerd/containerd.sock")); err != nil {
			t.Fatal(err)
		}
	}

	started := time.Now()
	if _, err := bed.StartBerth(node); err != nil {
		t.Fatal(err)
	}
	waitNode(t, client, node, started.Add(60*time.Second), func(n *v1.Node) bool {
		return freshReady(n, started)
	})
	t.Logf("node %s Ready %s after berth started on containerd at %s", node, time.Since(started).Round(time.Millisecond), altSocket)
	createPods(t, client, ns, node, "alt", 1)
	waitPod(t, client, ns, "alt-0", time.Minute, podReady)
}

// freshReady tells whether the node is Ready by a heartbeat sent after t.
func freshReady(n *v1.Node, t time.Time) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(t.Truncate(time.Second))
		}
	}
	return false
}

// stopNode stops berth, then containerd, on node.
func stopNode(t *testing.T, node string) {
	t.Helper()
	if err := bed.StopProcesses(node, "kubelet", syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := bed.StopProcesses(node, "containerd", syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// restoreNode puts node's configuration back and runs containerd and berth
// as the bed started them, Ready again.
func restoreNode(t *testing.T, node string, kubeletConfig, containerdToml []byte) {
	t.Helper()
	for _, comm := range []string{"kubelet", "containerd"} {
		if pids, _ := bed.FindProcesses(node, comm); len(pids) > 0 {
			if err := bed.StopProcesses(node, comm, syscall.SIGTERM, 30*time.Second); err != nil {
				t.Error(err)
			}
		}
	}
	for p, data := range map[string][]byte{"/var/lib/kubelet/config.yaml": kubeletConfig, containerdConfig: containerdToml} {
		hp, err := bed.HostPath(node, p)
		if err != nil {
			t.Error(err)
			continue
		}
		writeNodeFile(t, hp, data)
	}
	if hp, err := bed.HostPath(node, altSocketDir); err == nil {
		_ = os.RemoveAll(hp)
	}
	ctx := context.Background()
	if err := bed.StartContainerd(ctx, node); err != nil {
		t.Error(err)
		return
	}
	started := time.Now()
	if _, err := bed.StartBerth(node); err != nil {
		t.Error(err)
		return
	}
	// The test's context is done by now: poll on a context of its own.
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := adminClient(t)
	for attempt := 0; ; attempt++ {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil && freshReady(n, started) {
			return
		}
		if ctx.Err() != nil {
			t.Errorf("node %s not Ready again within 60 s of berth's restart on the default socket: %v", node, err)
			return
		}
		pause(ctx, attempt)
	}
}

func writeNodeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitCRI waits until a containerd answers CRI on the socket at hostPath.
func waitCRI(ctx context.Context, t *testing.T, hostPath string) {
	t.Helper()
	c, err := cri.Dial(hostPath)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WaitVersion(ctx, time.Minute); err != nil {
		t.Fatalf("containerd on %s: %v", hostPath, err)
	}
}
