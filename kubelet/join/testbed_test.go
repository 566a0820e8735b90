package join

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/test/testbed"
)

// bed is the test bed of TestJoinTestbed: a real kubeadm control plane and
// one node host (nil as non-root, or with -short).
var bed *testbed.Testbed

// TestMain brings up the test bed unless the tests run with -short (make
// unit): the unit tests do not need it.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(testbed.RunTests(m, testbed.Options{Nodes: 1}, &bed))
}

// kubeletStartConfig is the JoinConfiguration given to `kubeadm join phase
// kubelet-start`: the files it writes are those berth join must write.
const kubeletStartConfig = `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %s
    token: %q
    caCertHashes: [%q]
nodeRegistration:
  name: %s
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - name: node-ip
    value: %s
  - name: cgroup-root
    value: /berth-join-test
`

// TestJoinTestbed joins a node of the test bed with berth's join, from
// inside the node's network, and compares the files with those upstream
// kubeadm writes for the same node.
func TestJoinTestbed(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: needs the test bed, not brought up with -short")
	}
	testbed.Require(t, bed)
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	node := bed.Nodes()[0]
	hash, err := bed.CACertHash()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		APIEndpoint:      bed.ControlPlaneEndpoint(),
		Token:            bed.Token(),
		CACertHashes:     []string{hash},
		NodeName:         node.Name,
		Hostname:         node.Name,
		NodeIP:           node.IP,
		CRISocket:        "unix:///run/containerd/containerd.sock",
		KubeletExtraArgs: []string{"cgroup-root=/berth-join-test"},
		Paths:            DefaultPaths(t.TempDir()),
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return bed.DialContext(ctx, node.Name, network, addr)
		},
		Clock:   clock.RealClock{},
		Timeout: time.Minute,
	}

	t.Run("refusals", func(t *testing.T) {
		testRefusals(ctx, t, cfg, hash)
	})

	res, err := Join(ctx, cfg)
	if err != nil {
		t.Fatalf("Join() = %v", err)
	}
	if res.CACertHash != hash || res.Server != "https://"+bed.ControlPlaneEndpoint() {
		t.Errorf("Join() = %+v, want CA %s and server https://%s", res, hash, bed.ControlPlaneEndpoint())
	}

	joinConfig := fmt.Sprintf(kubeletStartConfig, bed.ControlPlaneEndpoint(), bed.Token(), hash, node.Name, node.IP)
	path, err := bed.HostPath(node.Name, "/run/berth/kubelet-start.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(joinConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	// Only the phase that writes the files: there is no kubelet to wait for.
	if err := bed.Run(ctx, node.Name, "kubeadm-kubelet-start", bed.UpstreamBinary("kubeadm"),
		"join", "phase", "kubelet-start", "--config", "/run/berth/kubelet-start.yaml"); err != nil {
		t.Fatalf("kubeadm join phase kubelet-start: %v", err)
	}
	for _, f := range []struct{ ours, kubeadms string }{
		{cfg.Paths.CACert, "/etc/kubernetes/pki/ca.crt"},
		{cfg.Paths.BootstrapKubeconfig, "/etc/kubernetes/bootstrap-kubelet.conf"},
		{cfg.Paths.KubeadmFlags, "/var/lib/kubelet/kubeadm-flags.env"},
		{cfg.Paths.InstanceConfig, "/var/lib/kubelet/instance-config.yaml"},
		{cfg.Paths.KubeletConfig, "/var/lib/kubelet/config.yaml"},
	} {
		outside, err := bed.HostPath(node.Name, f.kubeadms)
		if err != nil {
			t.Fatal(err)
		}
		assertSameFile(t, outside, f.ours)
	}
}

// testRefusals checks that join refuses a wrong pin, a wrong secret and an
// unknown token against the real API server and controller-manager.
func testRefusals(ctx context.Context, t *testing.T, cfg Config, hash string) {
	id, _, _ := strings.Cut(cfg.Token, ".")
	sum := sha256.Sum256([]byte("not the CA"))
	tests := []struct {
		name   string
		modify func(*Config)
		is     error
		inErr  string
	}{
		{name: "wrong pin", modify: func(c *Config) { c.CACertHashes = []string{"sha256:" + hex.EncodeToString(sum[:])} }, is: ErrNoPinMatch, inErr: hash},
		{name: "wrong secret", modify: func(c *Config) { c.Token = id + ".0000000000000000" }, is: ErrBadSignature},
		{name: "unknown token", modify: func(c *Config) { c.Token, c.Timeout = "qqqqqq.0000000000000000", 3*time.Second }, is: ErrNoSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.Paths = DefaultPaths(t.TempDir())
			tt.modify(&c)
			_, err := Join(ctx, c)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.inErr) {
				t.Fatalf("Join() = %v, want %v with %q", err, tt.is, tt.inErr)
			}
			assertNothingWritten(t, c.Paths)
		})
	}
}

// assertSameFile fails t unless ours has kubeadm's content and mode.
func assertSameFile(t *testing.T, kubeadms, ours string) {
	t.Helper()
	want, err := os.ReadFile(kubeadms)
	if err != nil {
		t.Fatalf("kubeadm's file: %v", err)
	}
	got, err := os.ReadFile(ours)
	if err != nil {
		t.Fatalf("berth's file: %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from kubeadm's (-kubeadm +berth):\n%s", filepath.Base(ours), diff)
	}
	wantSt, err := os.Stat(kubeadms)
	if err != nil {
		t.Fatal(err)
	}
	gotSt, err := os.Stat(ours)
	if err != nil {
		t.Fatal(err)
	}
	if wantSt.Mode().Perm() != gotSt.Mode().Perm() {
		t.Errorf("%s has mode %v, kubeadm's %v", filepath.Base(ours), gotSt.Mode().Perm(), wantSt.Mode().Perm())
	}
	t.Logf("%s: as kubeadm's (%d bytes, mode %v)", filepath.Base(ours), len(got), gotSt.Mode().Perm())
}
