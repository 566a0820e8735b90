package node

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/ktesting"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
	"github.com/berthnode/berth/test/vm"
)

// workerName is the VM's hostname and Node name.
const workerName = "worker1"

// TestBerthNodeInVM: on a Debian VM booted with systemd, berth is
// installed as kubeadm's kubelet and joins the test bed's cluster with a
// real `kubeadm join`; in IPVS mode a Service balances round-robin and a
// rolling update keeps an established connection until its pod goes;
// restarting berth restarts no pod; stopping it and rebooting brings the
// node back Ready with its pods.
func TestBerthNodeInVM(t *testing.T) {
	requireVMHost(t)
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithTimeout(ctx, 28*time.Minute)
	defer cancel()
	w := setUpWorker(ctx, t)

	var svcIP string
	if !t.Run("join", func(t *testing.T) { w.checkJoined(ctx, t) }) {
		t.FailNow()
	}
	if !t.Run("ipvs round robin", func(t *testing.T) { svcIP = w.checkRoundRobin(ctx, t) }) {
		w.dumpNetwork(ctx, t)
		t.FailNow()
	}
	t.Run("rolling update drains", func(t *testing.T) { w.checkDrain(ctx, t, svcIP) })
	t.Run("restart keeps pods", func(t *testing.T) { w.checkRestart(ctx, t) })
	t.Run("reboot", func(t *testing.T) { w.checkReboot(ctx, t) })
	t.Run("service removed", func(t *testing.T) { w.checkServiceRemoved(ctx, t, svcIP) })
}

// worker is the VM and the cluster it joins.
type worker struct {
	bed    *testbed.Testbed
	vm     *vm.VM
	client kubernetes.Interface
	ns     string
}

// setUpWorker brings up the control plane, boots the VM with what an
// operator puts on a worker (berth, kubeadm, its systemd drop-in, the
// images), installs berth as kubelet and runs `kubeadm join`.
func setUpWorker(ctx context.Context, t *testing.T) *worker {
	t.Helper()
	progress(t, "control plane")
	cfg, err := testbed.DefaultConfig(ctx, fmt.Sprintf("v%d", os.Getpid()), 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Owned = true
	bed, err := testbed.Up(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			bed.KeepLogs()
			t.Logf("test bed logs: %s", bed.LogDir())
		}
		if err := bed.Down(context.Background()); err != nil {
			t.Errorf("test bed down: %v", err)
		}
	})
	dir := t.TempDir()
	binary, err := testbed.BuildBerth(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := bed.ApplyBerthRBAC(ctx, binary); err != nil {
		t.Fatal(err)
	}
	echo := filepath.Join(dir, "echo")
	if out, err := goBuild(ctx, echo, "./test/images/echo"); err != nil {
		t.Fatalf("build the echo client: %v\n%s", err, out)
	}
	files, err := workerFiles(bed, binary, echo)
	if err != nil {
		t.Fatal(err)
	}

	progress(t, "VM image")
	imgCfg, err := vm.DefaultImageConfig()
	if err != nil {
		t.Fatal(err)
	}
	img, err := vm.BuildImage(ctx, imgCfg)
	if err != nil {
		t.Fatal(err)
	}
	progress(t, "booting the VM")
	lan := bed.LAN()
	v, err := vm.Boot(ctx, img, vm.Config{
		Name: workerName, NetNS: lan.NetNS, Bridge: lan.Bridge,
		Address: bed.GuestAddress(0), Gateway: lan.Gateway, DNS: []netip.Addr{lan.Gateway},
		Files: files, WorkDir: t.TempDir(), LogDir: bed.LogDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := v.Output(context.Background(), "journalctl -u kubelet --no-pager | tail -n 200"); err == nil {
				t.Logf("berth's journal:\n%s", out)
			}
		}
		if err := v.Close(); err != nil {
			t.Errorf("close the VM: %v", err)
		}
	})
	w := &worker{bed: bed, vm: v, client: cluster.AdminClient(t, bed)}
	w.ns = cluster.Namespace(t, w.client)

	progress(t, "installing berth as kubelet; kubeadm join")
	// The agent answers before systemd has started everything.
	w.sh(ctx, t, "boot finished", "systemctl is-system-running --wait; systemctl is-active containerd")
	w.sh(ctx, t, "berth image load: the node has no registry", "/root/berth image load /root/images/*.tar")
	w.sh(ctx, t, "berth install", "/root/berth install --kubelet --now")
	w.sh(ctx, t, "kubeadm join", "kubeadm join --config /root/join.yaml")
	return w
}

// workerFiles are the files the VM boots with.
func workerFiles(bed *testbed.Testbed, binary, echo string) ([]vm.File, error) {
	hash, err := bed.CACertHash()
	if err != nil {
		return nil, err
	}
	files := []vm.File{
		{Path: "/root/berth", Source: binary, Mode: 0o755},
		{Path: "/usr/bin/kubeadm", Source: bed.UpstreamBinary("kubeadm"), Mode: 0o755},
		{Path: "/usr/local/bin/echo-client", Source: echo, Mode: 0o755},
		// What the kubeadm package puts next to kubelet.service.
		{Path: "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", Data: []byte(kubeadmDropIn), Mode: 0o644},
		// berth's own settings: the IPVS proxy mode (berth install keeps
		// an existing configuration).
		{Path: "/etc/berth/config.yaml", Data: []byte(berthConfig), Mode: 0o644},
		{Path: "/root/join.yaml", Data: []byte(fmt.Sprintf(joinConfig, bed.ControlPlaneEndpoint(), bed.Token(), hash, workerName)), Mode: 0o600},
		{Path: "/root/patches/kubeletconfiguration+merge.yaml", Data: []byte(kubeletPatch), Mode: 0o644},
	}
	for _, img := range bed.ImageArchives() {
		files = append(files, vm.File{Path: "/root/images/" + filepath.Base(img), Source: img, Mode: 0o644})
	}
	return files, nil
}

const kubeadmDropIn = `[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

const berthConfig = `apiVersion: berth.dev/v1alpha1
kind: BerthConfiguration
proxy:
  mode: ipvs
`

const joinConfig = `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %s
    token: "%s"
    caCertHashes: ["%s"]
nodeRegistration:
  name: %s
  criSocket: unix:///run/containerd/containerd.sock
patches:
  directory: /root/patches
`

// kubeletPatch fits the cluster's KubeletConfiguration to the VM: its
// containerd uses the systemd cgroup driver, and graceful node shutdown is
// on.
const kubeletPatch = `cgroupDriver: systemd
shutdownGracePeriod: 30s
shutdownGracePeriodCriticalPods: 10s
`

// sh runs a shell command in the VM and returns its stdout; the test fails
// if it fails.
func (w *worker) sh(ctx context.Context, t *testing.T, what, cmd string) string {
	t.Helper()
	stdout, stderr, code, err := w.vm.Run(ctx, cmd)
	if err != nil || code != 0 {
		t.Fatalf("%s (%s): exit %d, %v\nstdout:\n%s\nstderr:\n%s", what, cmd, code, err, stdout, stderr)
	}
	return string(stdout)
}

// goBuild builds a static program of the repository.
func goBuild(ctx context.Context, out, pkg string) ([]byte, error) {
	repo, err := images.RepoRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

func progress(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: %s", time.Now().Format("15:04:05"), what)
}

// requireVMHost skips unless this machine can build and boot the VM.
func requireVMHost(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: booting a VM takes minutes (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: the control plane and the VM need root (namespaces, debootstrap, taps); CI runs it as root")
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s is not installed (make setup installs it)", tool)
		}
	}
}
