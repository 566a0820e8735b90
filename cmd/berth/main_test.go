package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"

	"github.com/berthnode/berth/cmd/berth/config"
)

// writeFile writes content to a fresh file and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "berth.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRun(t *testing.T) {
	valid := writeFile(t, "apiVersion: berth.dev/v1alpha1\nkind: BerthConfiguration\nnodeName: worker-1\n")
	oneProblem := writeFile(t, "apiVersion: berth.dev/v1alpha1\nkind: BerthConfiguration\nnodeName: worker-1\nkubelet:\n  rootDir: kubelet\n")
	twoProblems := writeFile(t, "apiVersion: berth.dev/v1alpha1\nkind: Kubelet\nnodeName: worker-1\nproxy:\n  mode: userspace\n")
	unknownField := writeFile(t, "apiVersion: berth.dev/v1alpha1\nkind: BerthConfiguration\nnodeName: worker-1\nproxy:\n  mdoe: ipvs\n")
	missing := filepath.Join(t.TempDir(), "missing.yaml")

	tests := []struct {
		name string
		args []string
		// shutDown cancels the context before run starts, as a signal would.
		shutDown   bool
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:       "no command",
			wantCode:   exitUsage,
			wantStderr: usage,
		},
		{
			name:       "unknown command",
			args:       []string{"start"},
			wantCode:   exitUsage,
			wantStderr: "berth: unknown command \"start\"\n\n" + usage,
		},
		{
			name:       "help",
			args:       []string{"help"},
			wantCode:   exitOK,
			wantStdout: usage,
		},
		{
			name:       "-h",
			args:       []string{"-h"},
			wantCode:   exitOK,
			wantStdout: usage,
		},
		{
			name:       "version",
			args:       []string{"version"},
			wantCode:   exitOK,
			wantStdout: "berth v0.0.0-dev (kubernetes v1.37.2 compatible, " + runtime.Version() + ", commit unknown)\n",
		},
		{
			name:       "version with an argument",
			args:       []string{"version", "--short"},
			wantCode:   exitUsage,
			wantStderr: "berth version: flag provided but not defined: -short\nRun 'berth version -h' for usage.\n",
		},
		{
			name:       "check a valid configuration",
			args:       []string{"run", "--config", valid, "--check"},
			wantCode:   exitOK,
			wantStdout: "berth: configuration " + valid + " is valid\n",
		},
		{
			name:       "check with klog verbosity",
			args:       []string{"run", "-v=0", "-vmodule=agent=0", "--config=" + valid, "--check"},
			wantCode:   exitOK,
			wantStdout: "berth: configuration " + valid + " is valid\n",
		},
		{
			name:       "invalid configuration",
			args:       []string{"run", "--config", oneProblem, "--check"},
			wantCode:   exitUsage,
			wantStderr: "berth: invalid configuration: " + oneProblem + `: kubelet.rootDir: Invalid value: "kubelet": must be an absolute path` + "\n",
		},
		{
			name:     "every problem at once",
			args:     []string{"run", "--config", twoProblems, "--check"},
			wantCode: exitUsage,
			wantStderr: "berth: invalid configuration: " + twoProblems + `: [kind: Unsupported value: "Kubelet": supported values: "BerthConfiguration", ` +
				`proxy.mode: Unsupported value: "userspace": supported values: "iptables", "ipvs", "nftables"]` + "\n",
		},
		{
			name:       "unknown field",
			args:       []string{"run", "--config", unknownField, "--check"},
			wantCode:   exitUsage,
			wantStderr: "berth: invalid configuration: " + unknownField + `: decoding: unknown field "proxy.mdoe"` + "\n",
		},
		{
			name:       "missing configuration file",
			args:       []string{"run", "--config", missing, "--check"},
			wantCode:   exitUsage,
			wantStderr: "berth: invalid configuration: reading configuration: open " + missing + ": no such file or directory\n",
		},
		{
			name:       "invalid configuration without --check",
			args:       []string{"run", "--config", oneProblem},
			wantCode:   exitUsage,
			wantStderr: "berth: invalid configuration: " + oneProblem + `: kubelet.rootDir: Invalid value: "kubelet": must be an absolute path` + "\n",
		},
		{
			name:       "run without --config",
			args:       []string{"run", "--check"},
			wantCode:   exitUsage,
			wantStderr: "berth run: --config is required\nRun 'berth run -h' for usage.\n",
		},
		{
			name:       "run with an unknown flag",
			args:       []string{"run", "--config", valid, "--dry-run"},
			wantCode:   exitUsage,
			wantStderr: "berth run: flag provided but not defined: -dry-run\nRun 'berth run -h' for usage.\n",
		},
		{
			name:       "run with a bad verbosity",
			args:       []string{"run", "-v=loud", "--config", valid},
			wantCode:   exitUsage,
			wantStderr: "berth run: invalid value \"loud\" for flag -v: strconv.ParseInt: parsing \"loud\": invalid syntax\nRun 'berth run -h' for usage.\n",
		},
		{
			name:       "run with an argument",
			args:       []string{"run", "--config", valid, "now"},
			wantCode:   exitUsage,
			wantStderr: "berth run: unexpected arguments: now\nRun 'berth run -h' for usage.\n",
		},
		{
			name:     "run until shutdown",
			args:     []string{"run", "--config", valid},
			shutDown: true,
			wantCode: exitOK,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			if tt.shutDown {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				cancel()
			}
			var stdout, stderr bytes.Buffer
			code := run(ctx, tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("run(%q) = %d, want %d", tt.args, code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout.String()); diff != "" {
				t.Errorf("run(%q) stdout mismatch (-want +got):\n%s", tt.args, diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr.String()); diff != "" {
				t.Errorf("run(%q) stderr mismatch (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

// TestCommandHelp checks that each command's -h prints its synopsis and every
// flag to stdout and succeeds.
func TestCommandHelp(t *testing.T) {
	tests := []struct {
		args      []string
		wantStart string
		wantFlags []string
	}{
		{
			args:      []string{"run", "-h"},
			wantStart: runSynopsis,
			wantFlags: []string{"-check", "-config FILE", "-v N", "-vmodule SPEC"},
		},
		{
			args:      []string{"version", "--help"},
			wantStart: versionSynopsis,
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), tt.args, &stdout, &stderr); code != exitOK {
				t.Errorf("run(%q) = %d, want %d", tt.args, code, exitOK)
			}
			if stderr.Len() > 0 {
				t.Errorf("run(%q) wrote to stderr: %q", tt.args, stderr.String())
			}
			help := stdout.String()
			if len(tt.wantFlags) == 0 && help != tt.wantStart {
				t.Errorf("run(%q) help = %q, want only the synopsis %q", tt.args, help, tt.wantStart)
			}
			if !strings.HasPrefix(help, tt.wantStart) {
				t.Errorf("run(%q) help does not start with the synopsis:\n%s", tt.args, help)
			}
			for _, flag := range tt.wantFlags {
				if !strings.Contains(help, "  "+flag+"\n") {
					t.Errorf("run(%q) help does not list %s:\n%s", tt.args, flag, help)
				}
			}
		})
	}
}

func TestRunAgent(t *testing.T) {
	errBoom := errors.New("boom")
	// waitForShutdown is a well-behaved loop: it runs until cancelled.
	waitForShutdown := func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	}
	tests := []struct {
		name string
		// shutDown cancels the context before the agent starts.
		shutDown bool
		loops    []func(context.Context) error
		wantErr  error
	}{
		{
			name:     "no loops stops on shutdown",
			shutDown: true,
		},
		{
			name:     "loops stop on shutdown",
			shutDown: true,
			loops:    []func(context.Context) error{waitForShutdown, waitForShutdown},
		},
		{
			name: "a failing loop stops the others",
			loops: []func(context.Context) error{
				waitForShutdown,
				func(context.Context) error { return errBoom },
			},
			wantErr: errBoom,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			if tt.shutDown {
				cancel()
			}
			cfg := config.Default()
			cfg.NodeName = "worker-1"
			err := runAgent(ctx, cfg, tt.loops...)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("runAgent() = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestConfigSummary(t *testing.T) {
	cfg := config.Default()
	cfg.NodeName = "worker-1"
	want := []any{
		"nodeName", "worker-1",
		"kubelet.configFile", "/var/lib/kubelet/config.yaml",
		"kubelet.kubeadmFlagsFile", "/var/lib/kubelet/kubeadm-flags.env",
		"kubelet.bootstrapKubeconfig", "/etc/kubernetes/bootstrap-kubelet.conf",
		"kubelet.kubeconfig", "/etc/kubernetes/kubelet.conf",
		"kubelet.rootDir", "/var/lib/kubelet",
		"kubelet.containerRuntimeEndpoint", "",
		"kubelet.podNetwork", config.PodNetworkBuiltin,
		"proxy.enabled", true,
		"proxy.mode", config.ProxyMode(""),
		"proxy.configFile", "",
	}
	if diff := cmp.Diff(want, configSummary(cfg)); diff != "" {
		t.Errorf("configSummary() mismatch (-want +got):\n%s", diff)
	}
}

// TestKubernetesVersion keeps the version berth claims compatibility with in
// step with the k8s.io libraries it is built from: library v0.X.Y belongs to
// Kubernetes v1.X.Y.
func TestKubernetesVersion(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var library string
	for s := bufio.NewScanner(f); s.Scan(); {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 && fields[0] == "k8s.io/apimachinery" {
			library = fields[1]
		}
	}
	if library == "" {
		t.Fatal("go.mod does not require k8s.io/apimachinery")
	}
	if want := "v1." + strings.TrimPrefix(library, "v0."); kubernetesVersion != want {
		t.Errorf("kubernetesVersion = %s, want %s to match k8s.io/apimachinery %s", kubernetesVersion, want, library)
	}
}
