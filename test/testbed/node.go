package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"text/template"
)

// containerdConfigPath is where a node's containerd configuration lives, on
// the node.
const containerdConfigPath = "/run/berth/containerd.toml"

// containerdMetrics is where a node's containerd serves its Prometheus
// metrics (/v1/metrics), inside the node's network namespace.
const containerdMetrics = "127.0.0.1:1338"

// containerdSocket is containerd's socket on a node, where kubeadm and the
// kubelet expect it.
const containerdSocket = "/run/containerd/containerd.sock"

// containerdTemplate configures a node's containerd like a kubeadm worker's,
// with three differences the bed needs: the sandbox image is the locally built
// one, and restrict_oom_score_adj is set because these machines may not
// lower a process's OOM score (runc fails every sandbox otherwise), and its
// metrics are served on the node's loopback, where a benchmark counts the
// CRI calls it answers.
var containerdTemplate = template.Must(template.New("containerd").Parse(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{{.Socket}}"

# Not indented: tests that move the CRI socket edit the indented
# address above.
[metrics]
address = "{{.Metrics}}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.SandboxImage}}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
`))

// renderContainerdConfig renders a node's containerd configuration.
func renderContainerdConfig(sandboxImage string) (string, error) {
	var b strings.Builder
	err := containerdTemplate.Execute(&b, struct{ Socket, SandboxImage, Metrics string }{containerdSocket, sandboxImage, containerdMetrics})
	if err != nil {
		return "", fmt.Errorf("render containerd config: %w", err)
	}
	return b.String(), nil
}

// Node describes a node host.
type Node struct {
	// Name is the node's host name.
	Name string
	// IP is its LAN address.
	IP string
	// CRIEndpoint is its containerd's socket as seen from outside the node.
	CRIEndpoint string
	// CgroupParent is the cgroup (relative to each hierarchy's root) under
	// which its pods' cgroups belong.
	CgroupParent string
}

// Nodes lists the bed's node hosts.
func (tb *Testbed) Nodes() []Node {
	var nodes []Node
	for _, h := range tb.state.Hosts {
		if !strings.HasPrefix(h.Name, "node") {
			continue
		}
		sock, _ := tb.HostPath(h.Name, containerdSocket) // a bound path: cannot fail
		nodes = append(nodes, Node{
			Name:         h.Name,
			IP:           h.IP,
			CRIEndpoint:  "unix://" + sock,
			CgroupParent: cgroupParent(tb.cfg.Name, h.Name),
		})
	}
	return nodes
}

// startContainerd starts containerd on node, waits until it answers CRI
// Version, and imports the bed's images into its k8s.io namespace.
func (tb *Testbed) startContainerd(ctx context.Context, node string) error {
	cfg, err := renderContainerdConfig(tb.cfg.SandboxImage)
	if err != nil {
		return err
	}
	path, err := tb.HostPath(node, containerdConfigPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("node %s: write containerd config: %w", node, err)
	}
	if err := tb.StartContainerd(ctx, node); err != nil {
		return err
	}
	sock, err := tb.HostPath(node, containerdSocket)
	if err != nil {
		return err
	}
	for _, img := range tb.cfg.Images {
		// ctr talks to the node's containerd through its socket; the
		// unpacking happens inside the node.
		cmd := exec.CommandContext(ctx, "ctr", "--address", sock, "--namespace", "k8s.io", "images", "import", img)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("node %s: import image %s: %w: %s", node, img, err, out)
		}
	}
	return nil
}
