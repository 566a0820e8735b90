package systemd_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/systemd"
)

// installTest is a root directory to install into and a berth binary to
// install.
type installTest struct {
	root   string
	binary string
}

func newInstallTest(t *testing.T) *installTest {
	t.Helper()
	it := &installTest{root: t.TempDir(), binary: filepath.Join(t.TempDir(), "berth")}
	it.build(t, "berth v1")
	return it
}

// build writes a berth "binary" with content.
func (it *installTest) build(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(it.binary, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (it *installTest) install(t *testing.T, kubelet bool) *systemd.InstallResult {
	t.Helper()
	res, err := systemd.Install(it.root, systemd.InstallOptions{Binary: it.binary, Kubelet: kubelet})
	if err != nil {
		t.Fatalf("Install() error: %v", err)
	}
	return res
}

// put creates a file on the installed system.
func (it *installTest) put(t *testing.T, p, content string) {
	t.Helper()
	full := filepath.Join(it.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// enable makes unit look enabled, as systemctl enable leaves it.
func (it *installTest) enable(t *testing.T, unit string) {
	t.Helper()
	wants := filepath.Join(it.root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/lib/systemd/system/"+unit, filepath.Join(wants, unit)); err != nil {
		t.Fatal(err)
	}
}

// file is an installed file: content (or symlink target) and mode.
type file struct {
	Content string
	Mode    fs.FileMode
}

// read returns what is installed at p.
func (it *installTest) read(t *testing.T, p string) file {
	t.Helper()
	full := filepath.Join(it.root, p)
	info, err := os.Lstat(full)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(full)
		if err != nil {
			t.Fatal(err)
		}
		return file{Content: target, Mode: fs.ModeSymlink}
	}
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	return file{Content: string(data), Mode: info.Mode().Perm()}
}

// shipped returns a file of package systemd's files directory.
func shipped(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("files", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestInstallStandalone(t *testing.T) {
	it := newInstallTest(t)
	got := it.install(t, false)
	want := &systemd.InstallResult{
		Changed: []string{systemd.BinaryPath, systemd.UnitPath, systemd.ConfigPath},
		Commands: [][]string{
			{"systemctl", "daemon-reload"},
			{"systemctl", "try-restart", "berth.service"},
			{"systemctl", "enable", "--now", "berth.service"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Install() (-want +got):\n%s", diff)
	}
	files := map[string]file{
		systemd.BinaryPath: {Content: "berth v1", Mode: 0o755},
		systemd.UnitPath:   {Content: shipped(t, "berth.service"), Mode: 0o644},
		systemd.ConfigPath: {Content: shipped(t, "config.yaml"), Mode: 0o644},
	}
	for p, want := range files {
		if diff := cmp.Diff(want, it.read(t, p)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", p, diff)
		}
	}
	if _, err := os.Lstat(filepath.Join(it.root, systemd.KubeletPath)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("standalone install touched %s: %v", systemd.KubeletPath, err)
	}
}

func TestInstallAgainChangesNothing(t *testing.T) {
	it := newInstallTest(t)
	it.install(t, false)
	got := it.install(t, false)
	want := &systemd.InstallResult{
		Kept:     []string{systemd.ConfigPath},
		Commands: [][]string{{"systemctl", "enable", "--now", "berth.service"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second Install() (-want +got):\n%s", diff)
	}
}

func TestInstallUpgrade(t *testing.T) {
	it := newInstallTest(t)
	it.install(t, false)
	it.put(t, systemd.ConfigPath, "# edited by the operator\n")
	it.build(t, "berth v2")
	got := it.install(t, false)
	want := &systemd.InstallResult{
		Changed: []string{systemd.BinaryPath},
		Kept:    []string{systemd.ConfigPath},
		Commands: [][]string{
			{"systemctl", "try-restart", "berth.service"},
			{"systemctl", "enable", "--now", "berth.service"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Install() (-want +got):\n%s", diff)
	}
	if got := it.read(t, systemd.BinaryPath).Content; got != "berth v2" {
		t.Errorf("binary after upgrade = %q, want berth v2", got)
	}
	if got := it.read(t, systemd.ConfigPath).Content; got != "# edited by the operator\n" {
		t.Errorf("configuration overwritten: %q", got)
	}
}

func TestInstallAsKubelet(t *testing.T) {
	it := newInstallTest(t)
	got := it.install(t, true)
	want := &systemd.InstallResult{
		Changed: []string{
			systemd.BinaryPath, systemd.UnitPath, systemd.ConfigPath,
			systemd.KubeletPath, systemd.KubeletDropInPath, systemd.KubeletUnitPath,
		},
		Commands: [][]string{
			{"systemctl", "daemon-reload"},
			{"systemctl", "try-restart", "kubelet.service"},
			{"systemctl", "enable", "kubelet.service"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Install() (-want +got):\n%s", diff)
	}
	files := map[string]file{
		systemd.KubeletPath:       {Content: systemd.BinaryPath, Mode: fs.ModeSymlink},
		systemd.KubeletDropInPath: {Content: shipped(t, "20-berth.conf"), Mode: 0o644},
		systemd.KubeletUnitPath:   {Content: shipped(t, "kubelet.service"), Mode: 0o644},
	}
	for p, want := range files {
		if diff := cmp.Diff(want, it.read(t, p)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", p, diff)
		}
	}
	again := it.install(t, true)
	if diff := cmp.Diff([][]string{{"systemctl", "enable", "kubelet.service"}}, again.Commands); again.Changed != nil || diff != "" {
		t.Errorf("second Install() changed %v, commands (-want +got):\n%s", again.Changed, diff)
	}
}

func TestInstallAsKubeletKeepsThePackagedUnit(t *testing.T) {
	it := newInstallTest(t)
	it.put(t, "/lib/systemd/system/kubelet.service", "[Service]\nExecStart=/usr/bin/kubelet\n")
	got := it.install(t, true)
	want := []string{systemd.BinaryPath, systemd.UnitPath, systemd.ConfigPath, systemd.KubeletPath, systemd.KubeletDropInPath}
	if diff := cmp.Diff(want, got.Changed); diff != "" {
		t.Errorf("Install() changed (-want +got):\n%s", diff)
	}
}

func TestInstallKubeletBinary(t *testing.T) {
	it := newInstallTest(t)
	it.put(t, systemd.KubeletPath, "upstream kubelet")
	_, err := systemd.Install(it.root, systemd.InstallOptions{Binary: it.binary, Kubelet: true})
	if !errors.Is(err, systemd.ErrKubeletInstalled) {
		t.Fatalf("Install() over a kubelet binary = %v, want ErrKubeletInstalled", err)
	}
	if got := it.read(t, systemd.KubeletPath); got.Content != "upstream kubelet" {
		t.Errorf("kubelet binary replaced without ReplaceKubelet: %+v", got)
	}
	if _, err := systemd.Install(it.root, systemd.InstallOptions{Binary: it.binary, Kubelet: true, ReplaceKubelet: true}); err != nil {
		t.Fatalf("Install(ReplaceKubelet) error: %v", err)
	}
	if diff := cmp.Diff(file{Content: systemd.BinaryPath, Mode: fs.ModeSymlink}, it.read(t, systemd.KubeletPath)); diff != "" {
		t.Errorf("kubelet (-want +got):\n%s", diff)
	}
}

func TestInstallRepointsAKubeletSymlink(t *testing.T) {
	it := newInstallTest(t)
	link := filepath.Join(it.root, systemd.KubeletPath)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/opt/kubernetes/bin/kubelet", link); err != nil {
		t.Fatal(err)
	}
	it.install(t, true)
	if got := it.read(t, systemd.KubeletPath).Content; got != systemd.BinaryPath {
		t.Errorf("kubelet symlink points to %q, want %q", got, systemd.BinaryPath)
	}
}

func TestInstallDisablesTheOtherUnit(t *testing.T) {
	tests := []struct {
		name    string
		kubelet bool
		enabled string
		want    []string
	}{
		{name: "standalone over kubelet", kubelet: false, enabled: "kubelet.service", want: []string{"systemctl", "disable", "--now", "kubelet.service"}},
		{name: "kubelet over standalone", kubelet: true, enabled: "berth.service", want: []string{"systemctl", "disable", "--now", "berth.service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := newInstallTest(t)
			it.enable(t, tt.enabled)
			got := it.install(t, tt.kubelet)
			if diff := cmp.Diff(tt.want, got.Commands[1]); diff != "" {
				t.Errorf("second command (-want +got):\n%s\nall: %q", diff, got.Commands)
			}
		})
	}
}

func TestInstallFromTheInstalledBinary(t *testing.T) {
	it := newInstallTest(t)
	it.install(t, false)
	res, err := systemd.Install(it.root, systemd.InstallOptions{Binary: filepath.Join(it.root, systemd.BinaryPath)})
	if err != nil {
		t.Fatalf("Install() from the installed binary: %v", err)
	}
	if res.Changed != nil {
		t.Errorf("Install() from the installed binary changed %v", res.Changed)
	}
}

func TestInstallTheRunningBinary(t *testing.T) {
	root := t.TempDir()
	if _, err := systemd.Install(root, systemd.InstallOptions{}); err != nil {
		t.Fatalf("Install() error: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, systemd.BinaryPath))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("installed binary differs from the running one")
	}
}
