package testbed

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"

	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/kubelet/atomicfile"
	"github.com/berthnode/berth/test/images"
)

// joinConfigPath is where a node's JoinConfiguration lives, on the node.
const joinConfigPath = "/run/berth/join.yaml"

// kubeletArgs are the flags kubeadm's systemd drop-in for kubelet passes
// (10-kubeadm.conf); the bed runs the node agent with exactly these.
var kubeletArgs = []string{
	"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
	"--kubeconfig=/etc/kubernetes/kubelet.conf",
	"--config=/var/lib/kubelet/config.yaml",
}

var joinTemplate = template.Must(template.New("join").Parse(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: {{.Endpoint}}
    token: "{{.Token}}"
    caCertHashes: ["{{.CAHash}}"]
nodeRegistration:
  name: {{.Node}}
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - name: cgroup-root
    value: {{.CgroupRoot}}
{{- if .IgnorePreflight}}
  ignorePreflightErrors: [{{.IgnorePreflight}}]
{{- end}}
`))

// InstallBerth copies the berth binary to the node's /usr/local/bin and
// links kubelet to it, as an operator installs berth in kubelet's place.
func (tb *Testbed) InstallBerth(node, binary string) error {
	dir, err := tb.HostPath(node, "/usr/local/bin")
	if err != nil {
		return err
	}
	data, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("install berth on %s: %w", node, err)
	}
	cold := func(f *os.File) error { return writeCold(f, data) }
	if err := atomicfile.WriteFunc(filepath.Join(dir, "berth"), 0o755, cold); err != nil {
		return fmt.Errorf("install berth on %s: %w", node, err)
	}
	link := filepath.Join(dir, "kubelet")
	if _, err := os.Lstat(link); err == nil {
		return nil
	}
	return os.Symlink("berth", link)
}

// writeCold writes data to f and drops it from the page cache, as a binary
// is on a node that booted since it was installed. Started straight after
// being written, a 100 MB binary would be in the page cache in full, dirty,
// and fault-around would map far more of it into the process than it ever
// touches: its RSS would measure the install, not the program. Only clean
// pages can be dropped, hence the sync first.
func writeCold(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("drop %s from the page cache: %w", f.Name(), err)
	}
	return nil
}

// StartBerth starts the installed berth on node as kubeadm's kubelet unit
// would start kubelet, with extra flags appended. Its log is
// LogDir()/NODE-berth.log.
func (tb *Testbed) StartBerth(node string, extra ...string) (*Process, error) {
	args := append(append([]string{"/usr/local/bin/kubelet"}, kubeletArgs...), extra...)
	return tb.Start(node, "berth", args...)
}

// Join runs a real `kubeadm join` on node against the bed's control plane.
// Only SystemVerification is ignored, and only on cgroup v1 machines: it
// refuses cgroup v1, which these test machines have (the cluster's
// KubeletConfiguration sets failCgroupV1: false, as upstream requires).
func (tb *Testbed) Join(ctx context.Context, node string) error {
	hash, err := tb.CACertHash()
	if err != nil {
		return err
	}
	params := struct{ Endpoint, Token, CAHash, Node, CgroupRoot, IgnorePreflight string }{
		Endpoint:   tb.ControlPlaneEndpoint(),
		Token:      tb.state.Token,
		CAHash:     hash,
		Node:       node,
		CgroupRoot: cgroupParent(tb.cfg.Name, node),
	}
	if trackingHierarchy() != cgroupFS {
		params.IgnorePreflight = "SystemVerification"
	}
	var b strings.Builder
	if err := joinTemplate.Execute(&b, params); err != nil {
		return fmt.Errorf("render join config: %w", err)
	}
	path, err := tb.HostPath(node, joinConfigPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write join config: %w", err)
	}
	return tb.Run(ctx, node, "kubeadm-join", tb.UpstreamBinary("kubeadm"), "join", "--config", joinConfigPath)
}

// CACertHash returns the cluster CA's public key hash, as `kubeadm join
// --discovery-token-ca-cert-hash` takes it (sha256:<hex of the SPKI>).
func (tb *Testbed) CACertHash() (string, error) {
	path, err := tb.HostPath(ControlPlaneHost, "/etc/kubernetes/pki/ca.crt")
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read cluster CA: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return "", fmt.Errorf("cluster CA %s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("cluster CA: %w", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// ApplyBerthRBAC applies the RBAC binding berth needs once per cluster, as
// an operator does: `berth rbac | kubectl apply -f -`.
func (tb *Testbed) ApplyBerthRBAC(ctx context.Context, binary string) error {
	manifest, err := exec.CommandContext(ctx, binary, "rbac").Output()
	if err != nil {
		return fmt.Errorf("berth rbac: %w", err)
	}
	path, err := tb.HostPath(ControlPlaneHost, "/run/berth/berth-rbac.yaml")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, manifest, 0o644); err != nil {
		return fmt.Errorf("write berth RBAC: %w", err)
	}
	if _, err := tb.Kubectl(ctx, "apply", "-f", "/run/berth/berth-rbac.yaml"); err != nil {
		return fmt.Errorf("apply berth RBAC: %w", err)
	}
	return nil
}

// BuildBerth builds the berth binary (with its embedded pause image) from
// the repository into dir and returns its path.
func BuildBerth(ctx context.Context, dir string) (string, error) {
	repo, err := images.RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "berth")
	for _, args := range [][]string{
		{"generate", "./cri/pause"},
		{"build", "-trimpath", "-o", out, "./cmd/berth"},
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return out, nil
}

// JoinNodes builds berth and makes every node a berth node, as an operator
// would: the RBAC binding applied once, berth installed as the node's
// kubelet and started, and `kubeadm join`. Progress goes to out.
func (tb *Testbed) JoinNodes(ctx context.Context, out io.Writer) error {
	fmt.Fprintln(out, "building berth")
	binary, err := BuildBerth(ctx, tb.RunDir())
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "$ berth rbac | kubectl apply -f -")
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
		fmt.Fprintf(out, "%s: berth installed as kubelet; kubeadm join %s\n", n.Name, tb.ControlPlaneEndpoint())
		if err := tb.Join(ctx, n.Name); err != nil {
			return fmt.Errorf("join %s: %w", n.Name, err)
		}
	}
	return nil
}

// JoinAll is an Options.Setup that makes every node a berth node (see
// JoinNodes), quietly.
func JoinAll(ctx context.Context, tb *Testbed) error {
	return tb.JoinNodes(ctx, io.Discard)
}
