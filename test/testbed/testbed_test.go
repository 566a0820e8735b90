package testbed

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got):\n%s", name, diff)
	}
}

func TestRenderKubeadmConfig(t *testing.T) {
	got, err := renderKubeadmConfig(kubeadmParams{
		Token:             "abcdef.0123456789abcdef",
		AdvertiseAddress:  "192.168.200.10",
		Host:              "cp",
		ClusterName:       "berth-test",
		KubernetesVersion: KubernetesVersion,
		PodSubnet:         PodSubnet,
		ServiceSubnet:     ServiceSubnet,
	})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "kubeadm.yaml", got)
}

func TestRenderContainerdConfig(t *testing.T) {
	got, err := renderContainerdConfig("berth.local/pause:3.10")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "containerd.toml", got)
}

func TestManifestCommand(t *testing.T) {
	got, err := manifestCommand("testdata/kube-apiserver.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kube-apiserver", "--advertise-address=192.168.200.10", "--secure-port=6443", "--v=2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	if _, err := manifestCommand("testdata/missing.yaml"); err == nil {
		t.Error("missing manifest: no error")
	}
}

func TestNewToken(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	seen := map[string]bool{}
	for range 100 {
		tok, err := newToken()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(tok) {
			t.Fatalf("token %q is not of kubeadm's form", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok] = true
	}
}

func TestConfigValidate(t *testing.T) {
	upstream := t.TempDir()
	for _, b := range upstreamBinaries {
		if err := os.WriteFile(filepath.Join(upstream, b), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	valid := Config{Name: "t1", Root: "/var/tmp/x", Nodes: 2, UpstreamDir: upstream, SandboxImage: "p:1"}
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; none for a valid config
	}{
		{"valid", func(*Config) {}, nil},
		{"no nodes needs no sandbox image", func(c *Config) { c.Nodes, c.SandboxImage = 0, "" }, nil},
		{"bad name", func(c *Config) { c.Name = "Bad_Name" }, []string{`name "Bad_Name"`}},
		{"long name", func(c *Config) { c.Name = strings.Repeat("a", 17) }, []string{"1-16"}},
		{"relative root", func(c *Config) { c.Root = "tmp" }, []string{`root "tmp"`}},
		{"too many nodes", func(c *Config) { c.Nodes = maxNodes + 1 }, []string{"nodes 17"}},
		{"no sandbox image", func(c *Config) { c.SandboxImage = "" }, []string{"sandbox image"}},
		{"missing binaries and image", func(c *Config) {
			c.UpstreamDir = t.TempDir()
			c.Images = []string{"/nonexistent.tar"}
		}, []string{"upstream binary etcd", "upstream binary kubectl", "make setup", "image /nonexistent.tar"}},
		{"all at once", func(c *Config) { c.Name, c.Root = "", "" }, []string{"name", "root"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.modify(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestHostPath(t *testing.T) {
	tb := &Testbed{cfg: Config{Name: "b", Root: "/r"}, state: &State{}}
	tests := []struct {
		path, want string
		ok         bool
	}{
		{"/etc/kubernetes", "/r/b/hosts/node1/fs/etc/kubernetes", true},
		{"/etc/kubernetes/pki/ca.crt", "/r/b/hosts/node1/fs/etc/kubernetes/pki/ca.crt", true},
		{"/var/lib/kubelet/../kubelet/config.yaml", "/r/b/hosts/node1/fs/var/lib/kubelet/config.yaml", true},
		{"/etc/kubernetes-other", "", false},
		{"/etc/passwd", "", false},
		{"/var/lib/../lib/containerd/x", "/r/b/hosts/node1/fs/var/lib/containerd/x", true},
	}
	for _, tt := range tests {
		got, err := tb.HostPath("node1", tt.path)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("HostPath(node1, %q) = %q, %v; want %q, ok %v", tt.path, got, err, tt.want, tt.ok)
		}
	}
}

func TestSetupScriptMountsEveryBoundPath(t *testing.T) {
	tb := &Testbed{cfg: Config{Name: "b", Root: "/r"}, state: &State{}}
	script := tb.setupScript(HostState{Name: "node1", Mounts: true})
	for _, p := range boundPaths {
		want := `mount -n --bind "$N/fs"'` + p + `' "$S"'` + p + `'`
		if !staged(p) {
			want = `mount -n --bind "$N/fs"'` + p + `' '` + p + `'`
		}
		if !strings.Contains(script, want) {
			t.Errorf("setup script does not bind %s:\n%s", p, script)
		}
	}
	// The moves come after every bind: their sources must be resolved
	// before /var is overlaid.
	if strings.LastIndex(script, "mount -n --bind") > strings.Index(script, "mount -n --move") {
		t.Errorf("a bind mount follows a move:\n%s", script)
	}
	if got := tb.setupScript(HostState{Name: "lan"}); got != "true" {
		t.Errorf("setup script of a network-only host = %q, want true", got)
	}
}

func TestMoveOrder(t *testing.T) {
	tests := []struct {
		hostDir string
		want    []string
	}{
		{"/var/tmp/berth-testbed/b/hosts/node1", []string{"/etc", "/run", "/sys", "/var"}},
		{"/run/bed/hosts/node1", []string{"/etc", "/sys", "/var", "/run"}},
		{"/etc/bed/hosts/node1", []string{"/run", "/sys", "/var", "/etc"}},
		{"/work/bed/hosts/node1", []string{"/etc", "/run", "/sys", "/var"}},
		{"/variable/bed", []string{"/etc", "/run", "/sys", "/var"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, moveOrder(tt.hostDir)); diff != "" {
			t.Errorf("moveOrder(%s) (-want +got):\n%s", tt.hostDir, diff)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":     "'plain'",
		"it's":      `'it'\''s'`,
		"$HOME; rm": "'$HOME; rm'",
		"":          "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 5}
	for _, s := range []string{"abc", "defg", "h"} {
		if _, err := b.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.String(); got != "defgh" {
		t.Errorf("tail = %q, want defgh", got)
	}
}

func TestAbandoned(t *testing.T) {
	start, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		state State
		want  bool
	}{
		{"not owned", State{}, false},
		{"owner alive", State{OwnerPID: os.Getpid(), OwnerStart: start}, false},
		{"pid reused", State{OwnerPID: os.Getpid(), OwnerStart: start + "0"}, true},
		{"owner gone", State{OwnerPID: 1 << 30, OwnerStart: "1"}, true},
	}
	for _, tt := range tests {
		if got := tt.state.abandoned(); got != tt.want {
			t.Errorf("%s: abandoned() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNodeIP(t *testing.T) {
	if got := nodeIP(1).String(); got != "192.168.200.11" {
		t.Errorf("nodeIP(1) = %s", got)
	}
	if got := nodeIP(maxNodes).String(); got != "192.168.200.26" {
		t.Errorf("nodeIP(%d) = %s", maxNodes, got)
	}
}
