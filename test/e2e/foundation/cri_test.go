package foundation

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// bridgeConflist is a plain bridge network for the sandboxes of this test:
// the test bed gives nodes no pod network of their own (berth does).
const bridgeConflist = `{
  "cniVersion": "1.0.0",
  "name": "foundation",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}
`

// TestPodThroughCRI starts a pod sandbox and a busybox container through
// CRI on every node, with the locally built images, and checks that it runs
// in the node's network, prints, and is removed.
func TestPodThroughCRI(t *testing.T) {
	testbed.Require(t, bed)
	for i, n := range bed.Nodes() {
		t.Run(n.Name, func(t *testing.T) {
			runPod(t, n, fmt.Sprintf("10.88.%d.0/24", i+1))
		})
	}
}

func runPod(t *testing.T, n testbed.Node, subnet string) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	conf := mustHostPath(t, n.Name, "/etc/cni/net.d/10-foundation.conflist")
	if err := os.WriteFile(conf, fmt.Appendf(nil, bridgeConflist, subnet), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(conf) })

	client, err := cri.Dial(n.CRIEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	waitNetworkReady(ctx, t, client)

	uid := fmt.Sprintf("foundation-%s-%d", n.Name, time.Now().UnixNano())
	logDir := "/var/log/pods/default_probe_" + uid
	sandboxConfig := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "probe", Namespace: "default", Uid: uid},
		Hostname:     "probe",
		LogDirectory: logDir,
		Linux:        &runtimeapi.LinuxPodSandboxConfig{CgroupParent: n.CgroupParent + "/pod" + uid},
	}
	sandbox, err := client.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	sandboxID := sandbox.PodSandboxId
	removed := false
	defer func() {
		if !removed {
			_, _ = client.Runtime.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandboxID})
			_, _ = client.Runtime.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandboxID})
		}
	}()
	status, err := client.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sandboxID})
	if err != nil {
		t.Fatal(err)
	}
	podIP := status.Status.GetNetwork().GetIp()
	if !strings.HasPrefix(podIP, strings.TrimSuffix(subnet, "0/24")) {
		t.Errorf("pod IP %q not in %s", podIP, subnet)
	}

	created, err := client.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sandboxID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "hello"},
			Image:    &runtimeapi.ImageSpec{Image: images.BusyboxRef},
			Command:  []string{"sh", "-c", "echo hello from $(hostname); ip -4 -o addr show eth0"},
			LogPath:  "hello/0.log",
		},
		SandboxConfig: sandboxConfig,
	})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if _, err := client.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	exit := waitExited(ctx, t, client, created.ContainerId)
	logs, err := os.ReadFile(filepath.Join(mustHostPath(t, n.Name, logDir), "hello/0.log"))
	if err != nil {
		t.Fatal(err)
	}
	if exit != 0 || !strings.Contains(string(logs), "hello from probe") || !strings.Contains(string(logs), podIP+"/") {
		t.Errorf("container exited %d with log\n%s\nwant exit 0, a hello from probe and the pod IP %s", exit, logs, podIP)
	}

	if _, err := client.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandboxID}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := client.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandboxID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	removed = true
	left, err := client.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{PodSandboxId: sandboxID},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Containers) != 0 {
		t.Errorf("%d containers left after the sandbox was removed", len(left.Containers))
	}
}

// waitNetworkReady polls the runtime until its CNI network is ready (it
// loads the configuration written above asynchronously).
func waitNetworkReady(ctx context.Context, t *testing.T, client *cri.Client) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		st, err := client.Runtime.Status(ctx, &runtimeapi.StatusRequest{})
		if err == nil {
			for _, c := range st.Status.Conditions {
				if c.Type == runtimeapi.NetworkReady && c.Status {
					return
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("runtime network not ready: %v (status %v)", ctx.Err(), st)
		}
		sleepCtx(ctx, attempt)
	}
}

// waitExited polls until the container has exited and returns its code.
func waitExited(ctx context.Context, t *testing.T, client *cri.Client, id string) int32 {
	t.Helper()
	for attempt := 0; ; attempt++ {
		st, err := client.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err == nil && st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st.Status.ExitCode
		}
		if ctx.Err() != nil {
			t.Fatalf("container %s did not exit: %v (last status %v, %v)", id, ctx.Err(), st, err)
		}
		sleepCtx(ctx, attempt)
	}
}
