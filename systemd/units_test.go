package systemd_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/cmd/berth/config"
)

// unitFile is a parsed unit file: section → key → values, in order.
type unitFile map[string]map[string][]string

// parseUnit reads a unit file or drop-in the way systemd does for the
// simple files berth ships: comments, sections, Key=Value lines.
func parseUnit(t *testing.T, name string) unitFile {
	t.Helper()
	f, err := os.Open(filepath.Join("files", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unit := unitFile{}
	section := ""
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			if unit[section] == nil {
				unit[section] = map[string][]string{}
			}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a Key=Value line in a section: %q", name, line)
			}
			unit[section][key] = append(unit[section][key], value)
		}
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return unit
}

// pick returns the named settings of a section, each as its last value.
func (u unitFile) pick(section string, keys ...string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		if v := u[section][k]; len(v) > 0 {
			out[k] = v[len(v)-1]
		}
	}
	return out
}

// serviceSettings are the [Service] settings both ways of running berth
// must agree on.
func serviceSettings() []string {
	return []string{"Type", "NotifyAccess", "WatchdogSec", "TimeoutStartSec", "Restart", "KillMode", "OOMScoreAdjust"}
}

func wantService() map[string]string {
	return map[string]string{
		"Type":            "notify",
		"NotifyAccess":    "main",
		"WatchdogSec":     "60s",
		"TimeoutStartSec": "5min",
		"Restart":         "always",
		"KillMode":        "process",
		"OOMScoreAdjust":  "-999",
	}
}

func TestBerthUnit(t *testing.T) {
	unit := parseUnit(t, "berth.service")
	if diff := cmp.Diff(wantService(), unit.pick("Service", serviceSettings()...)); diff != "" {
		t.Errorf("[Service] (-want +got):\n%s", diff)
	}
	want := map[string]string{
		"ExecStart":  "/usr/local/bin/berth run --config /etc/berth/config.yaml",
		"RestartSec": "5",
	}
	if diff := cmp.Diff(want, unit.pick("Service", "ExecStart", "RestartSec")); diff != "" {
		t.Errorf("[Service] (-want +got):\n%s", diff)
	}
	wantUnit := map[string]string{
		"Wants":                 "network-online.target containerd.service",
		"After":                 "network-online.target containerd.service",
		"Conflicts":             "kubelet.service",
		"StartLimitIntervalSec": "0",
	}
	if diff := cmp.Diff(wantUnit, unit.pick("Unit", "Wants", "After", "Conflicts", "StartLimitIntervalSec")); diff != "" {
		t.Errorf("[Unit] (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"WantedBy": "multi-user.target"}, unit.pick("Install", "WantedBy")); diff != "" {
		t.Errorf("[Install] (-want +got):\n%s", diff)
	}
}

func TestKubeletDropIn(t *testing.T) {
	unit := parseUnit(t, "20-berth.conf")
	if diff := cmp.Diff(wantService(), unit.pick("Service", serviceSettings()...)); diff != "" {
		t.Errorf("[Service] (-want +got):\n%s", diff)
	}
	// kubeadm's 10-kubeadm.conf owns ExecStart, with kubelet's flags.
	if got := unit["Service"]["ExecStart"]; got != nil {
		t.Errorf("the drop-in sets ExecStart=%q; kubeadm's must stay", got)
	}
	if got := unit.pick("Unit", "Conflicts"); got["Conflicts"] != "berth.service" {
		t.Errorf("the drop-in does not conflict with berth.service: %v", got)
	}
}

func TestKubeletUnit(t *testing.T) {
	unit := parseUnit(t, "kubelet.service")
	want := map[string]string{"ExecStart": "/usr/bin/kubelet", "Restart": "always"}
	if diff := cmp.Diff(want, unit.pick("Service", "ExecStart", "Restart")); diff != "" {
		t.Errorf("[Service] (-want +got):\n%s", diff)
	}
}

// TestUnitsVerify has systemd check the units and the drop-in: unknown
// settings, bad values, broken dependencies. The binaries they start are
// not installed here, which is the one complaint ignored.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd); it verifies the unit files")
	}
	dir := t.TempDir()
	for src, dst := range map[string]string{
		"berth.service":   "berth.service",
		"kubelet.service": "kubelet.service",
		"20-berth.conf":   "kubelet.service.d/20-berth.conf",
	} {
		data, err := os.ReadFile(filepath.Join("files", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "berth.service", "kubelet.service")
	// The trailing colon keeps systemd's own unit directories after ours.
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":")
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.Contains(line, "is not executable: No such file or directory") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

// TestDefaultConfig keeps the configuration Install writes loadable by
// `berth run --config` and equal to berth's defaults.
func TestDefaultConfig(t *testing.T) {
	got, err := config.Load(filepath.Join("files", "config.yaml"))
	if err != nil {
		t.Fatalf("config.Load() error: %v", err)
	}
	want := config.Default()
	want.NodeName = got.NodeName // the hostname, defaulted by Load
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("default configuration differs from config.Default() (-want +got):\n%s", diff)
	}
}
