package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
)

// header is the part of a document that has no default.
const header = "apiVersion: berth.dev/v1alpha1\nkind: BerthConfiguration\n"

// hostnameIs returns a hostname lookup that answers name.
func hostnameIs(name string) func() (string, error) {
	return func() (string, error) { return name, nil }
}

// defaultsWith returns Default with the node name Load derives from the
// "worker-1" hostname, changed by modify.
func defaultsWith(modify func(*Config)) *Config {
	cfg := Default()
	cfg.NodeName = "worker-1"
	if modify != nil {
		modify(cfg)
	}
	return cfg
}

// writeConfig writes content to a fresh file and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// strictFieldPaths returns the paths of the unknown or duplicate fields
// reported in err.
func strictFieldPaths(err error) []string {
	var agg utilerrors.Aggregate
	if !errors.As(err, &agg) {
		return nil
	}
	var paths []string
	for _, e := range agg.Errors() {
		var fe kjson.FieldError
		if errors.As(e, &fe) {
			paths = append(paths, fe.FieldPath())
		}
	}
	return paths
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name     string
		content  string
		hostname string
		want     *Config
	}{
		{
			name:     "header only",
			content:  header,
			hostname: "worker-1",
			want:     defaultsWith(nil),
		},
		{
			name:     "node name from hostname as kubelet derives it",
			content:  header,
			hostname: " Worker-1\n",
			want:     defaultsWith(nil),
		},
		{
			name:     "explicit node name wins over hostname",
			content:  header + "nodeName: edge-7\n",
			hostname: "worker-1",
			want:     defaultsWith(func(c *Config) { c.NodeName = "edge-7" }),
		},
		{
			name:     "partial section keeps other defaults",
			content:  header + "proxy:\n  mode: ipvs\n",
			hostname: "worker-1",
			want:     defaultsWith(func(c *Config) { c.Proxy.Mode = ProxyModeIPVS }),
		},
		{
			name:     "explicit false overrides a true default",
			content:  header + "proxy:\n  enabled: false\n",
			hostname: "worker-1",
			want:     defaultsWith(func(c *Config) { c.Proxy.Enabled = false }),
		},
		{
			name:     "null section keeps defaults",
			content:  header + "kubelet:\nproxy: null\n",
			hostname: "worker-1",
			want:     defaultsWith(nil),
		},
		{
			name: "every field set",
			content: header + `nodeName: node-a
kubelet:
  configFile: /etc/berth/kubelet.yaml
  kubeadmFlagsFile: /etc/berth/kubeadm-flags.env
  bootstrapKubeconfig: /etc/berth/bootstrap.conf
  kubeconfig: /etc/berth/kubelet.conf
  rootDir: /srv/kubelet
  containerRuntimeEndpoint: unix:///var/run/crio/crio.sock
  podNetwork: cni
proxy:
  enabled: true
  mode: ipvs
  configFile: /etc/berth/kube-proxy.yaml
`,
			hostname: "ignored",
			want: &Config{
				APIVersion: APIVersion,
				Kind:       Kind,
				NodeName:   "node-a",
				Kubelet: KubeletConfig{
					ConfigFile:               "/etc/berth/kubelet.yaml",
					KubeadmFlagsFile:         "/etc/berth/kubeadm-flags.env",
					BootstrapKubeconfig:      "/etc/berth/bootstrap.conf",
					Kubeconfig:               "/etc/berth/kubelet.conf",
					RootDir:                  "/srv/kubelet",
					ContainerRuntimeEndpoint: "unix:///var/run/crio/crio.sock",
					PodNetwork:               PodNetworkCNI,
				},
				Proxy: ProxyConfig{
					Enabled:    true,
					Mode:       ProxyModeIPVS,
					ConfigFile: "/etc/berth/kube-proxy.yaml",
				},
			},
		},
		{
			name:     "leading separator and comment-only documents",
			content:  "# berth\n---\n" + header + "---\n# nothing else\n",
			hostname: "worker-1",
			want:     defaultsWith(nil),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(writeConfig(t, tt.content), hostnameIs(tt.hostname))
			if err != nil {
				t.Fatalf("load() error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("load() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadExample keeps the documented example loadable and equal to the
// defaults it claims to show.
func TestLoadExample(t *testing.T) {
	got, err := load(filepath.Join("testdata", "example.yaml"), hostnameIs("worker-1"))
	if err != nil {
		t.Fatalf("load() error: %v", err)
	}
	if diff := cmp.Diff(defaultsWith(nil), got); diff != "" {
		t.Errorf("example differs from the defaults (-want +got):\n%s", diff)
	}
}

func TestLoadErrors(t *testing.T) {
	errLookup := errors.New("uname failed")
	tests := []struct {
		name     string
		content  string
		noFile   bool
		hostname func() (string, error)
		// Exactly one of the following describes the expected error.
		wantIs        error           // a cause found with errors.Is
		wantFieldErrs field.ErrorList // validation errors, Detail ignored
		wantStrict    []string        // paths of unknown or duplicate fields
		wantMessage   string          // text the operator must see, for errors without a type
	}{
		{
			name:   "missing file",
			noFile: true,
			wantIs: fs.ErrNotExist,
		},
		{
			name:    "empty file",
			content: "",
			wantFieldErrs: field.ErrorList{
				field.Required(field.NewPath("apiVersion"), ""),
				field.Required(field.NewPath("kind"), ""),
			},
		},
		{
			name:    "comments only",
			content: "# TODO: fill in\n",
			wantFieldErrs: field.ErrorList{
				field.Required(field.NewPath("apiVersion"), ""),
				field.Required(field.NewPath("kind"), ""),
			},
		},
		{
			name:    "invalid values",
			content: header + "kubelet:\n  rootDir: kubelet\n  podNetwork: calico\n",
			wantFieldErrs: field.ErrorList{
				field.Invalid(field.NewPath("kubelet", "rootDir"), "kubelet", ""),
				field.NotSupported[string](field.NewPath("kubelet", "podNetwork"), PodNetwork("calico"), nil),
			},
		},
		{
			name:     "hostname is not a valid node name",
			content:  header,
			hostname: hostnameIs("worker_1"),
			wantFieldErrs: field.ErrorList{
				field.Invalid(field.NewPath("nodeName"), "worker_1", ""),
			},
		},
		{
			name:       "unknown field",
			content:    header + "nodname: worker-1\n",
			wantStrict: []string{"nodname"},
		},
		{
			name:       "every unknown nested field",
			content:    header + "kubelet:\n  cgroupDriver: systemd\nproxy:\n  mdoe: ipvs\n",
			wantStrict: []string{"kubelet.cgroupDriver", "proxy.mdoe"},
		},
		{
			name:       "field name in the wrong case",
			content:    header + "NodeName: worker-1\n",
			wantStrict: []string{"NodeName"},
		},
		{
			name:        "duplicate field",
			content:     header + "nodeName: a\nnodeName: b\n",
			wantMessage: `key "nodeName" already set`,
		},
		{
			name:        "duplicate nested field",
			content:     header + "proxy:\n  mode: ipvs\n  mode: iptables\n",
			wantMessage: `key "mode" already set`,
		},
		{
			name:        "string for a bool",
			content:     header + "proxy:\n  enabled: \"yes\"\n",
			wantMessage: "proxy.enabled of type bool",
		},
		{
			name:        "number for a string",
			content:     header + "nodeName: 42\n",
			wantMessage: "nodeName of type string",
		},
		{
			name:        "list for a section",
			content:     header + "kubelet: [rootDir]\n",
			wantMessage: "kubelet of type config.KubeletConfig",
		},
		{
			name:        "not a mapping",
			content:     "- apiVersion: berth.dev/v1alpha1\n",
			wantMessage: "cannot unmarshal array",
		},
		{
			name:        "YAML syntax error",
			content:     header + "proxy: [\n",
			wantMessage: "line 3",
		},
		{
			name:        "second document",
			content:     header + "---\n" + header,
			wantMessage: "more than one YAML document",
		},
		{
			name:     "hostname lookup fails",
			content:  header,
			hostname: func() (string, error) { return "", errLookup },
			wantIs:   errLookup,
		},
		{
			name:        "empty hostname",
			content:     header,
			hostname:    hostnameIs(" "),
			wantMessage: "hostname is empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "missing.yaml")
			if !tt.noFile {
				path = writeConfig(t, tt.content)
			}
			hostname := tt.hostname
			if hostname == nil {
				hostname = hostnameIs("worker-1")
			}
			cfg, err := load(path, hostname)
			if err == nil {
				t.Fatalf("load() = %+v, want an error", cfg)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("load() error %q does not name the file %s", err, path)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("load() error %v, want one wrapping %v", err, tt.wantIs)
			}
			if diff := cmp.Diff(tt.wantFieldErrs, fieldErrors(err), ignoreDetail); diff != "" {
				t.Errorf("load() field errors mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStrict, strictFieldPaths(err), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("load() strict decoding errors mismatch (-want +got):\n%s", diff)
			}
			if !strings.Contains(err.Error(), tt.wantMessage) {
				t.Errorf("load() error %q, want it to mention %q", err, tt.wantMessage)
			}
		})
	}
}

// TestLoadUsesHostname checks the exported entry point end to end on this
// machine: with no nodeName, the node is named after the host.
func TestLoadUsesHostname(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skipf("no hostname on this machine: %v", err)
	}
	want := strings.ToLower(strings.TrimSpace(host))
	if msgs := validation.IsDNS1123Subdomain(want); len(msgs) > 0 {
		t.Skipf("hostname %q cannot name a node: %v", host, msgs)
	}
	cfg, err := Load(writeConfig(t, header))
	if err != nil {
		t.Fatalf("Load() error: %v", err)
	}
	if cfg.NodeName != want {
		t.Errorf("Load() nodeName = %q, want %q", cfg.NodeName, want)
	}
}
