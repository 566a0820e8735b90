package conformance

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berthnode/berth/test/images"
)

// TestBuild builds every image into $BERTH_CACHE (a no-op when the cache
// is warm; a cold build compiles busybox, agnhost and CoreDNS and takes
// minutes), reads each archive back and runs what the e2e tests run inside
// the images, in chroots of their unpacked layers.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds busybox, agnhost and CoreDNS: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("writes the shared cache and runs chroots: needs root")
	}
	for _, tool := range []string{"go", "gcc", "patch", "apt-get"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is missing (run make conformance-deps): %v", tool, err)
		}
	}
	for _, h := range hostPrograms {
		if _, err := lookPath(h.Name); err != nil {
			t.Skipf("%v (run make conformance-deps)", err)
		}
	}
	built, err := Build(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	archives := map[string]*images.Archive{}
	for _, b := range built {
		a, err := images.ReadArchive(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		if len(a.RepoTags) != 1 || a.RepoTags[0] != b.Ref {
			t.Errorf("%s tags %v, want [%s]", b.Path, a.RepoTags, b.Ref)
		}
		archives[b.Ref] = a
	}
	for ref, files := range map[string][]string{
		AgnhostRef:         {"agnhost", "coredns", "bin/busybox", "usr/bin/dig", "usr/bin/curl", "usr/bin/nc", "usr/bin/ip", "usr/bin/ss", "usr/bin/getent", "bin/bash"},
		AgnhostPrevRef:     {"agnhost"},
		BusyboxRef:         {"bin/busybox"},
		GlibcDNSTestingRef: {"usr/bin/dig", "usr/bin/getent", "bin/busybox"},
		NonewprivsRef:      {"usr/local/bin/nnp"},
		CoreDNSRef:         {"coredns"},
		PauseRef:           {"pause"},
	} {
		a := archives[ref]
		if a == nil {
			t.Errorf("no archive of %s", ref)
			continue
		}
		for _, f := range files {
			if got := a.Layer[f].Describe; a.Layer[f].Header == nil || !strings.HasSuffix(got(), " elf") {
				t.Errorf("%s: %s is not an executable", ref, f)
			}
		}
	}
	if nnp := archives[NonewprivsRef].Layer["usr/local/bin/nnp"]; nnp.Header == nil || nnp.Mode()&os.ModeSetuid == 0 {
		t.Errorf("nonewprivs: nnp is not setuid")
	}
	runInImages(t, archives)
}

// runInImages runs the commands the e2e tests depend on in chroots of the
// unpacked images.
func runInImages(t *testing.T, archives map[string]*images.Archive) {
	busybox := unpack(t, archives[BusyboxRef])
	agnhost := unpack(t, archives[AgnhostRef])
	dns := unpack(t, archives[GlibcDNSTestingRef])
	nnp := unpack(t, archives[NonewprivsRef])

	// The ConfigMap and Secret env tests: names that are not identifiers
	// survive the shell.
	env := []string{"PATH=/usr/bin:/bin", "data-1=value-1", "$_-data-1=value-1", "#@!data-1=value-1"}
	out := chroot(t, busybox, env, nil, "/bin/sh", "-c", "env")
	for _, want := range env[1:] {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("busybox sh -c env lost %q:\n%s", want, out)
		}
	}
	// The read-only root test compares ash's wording.
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(busybox, ro, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(ro, syscall.MNT_DETACH)
	if err := syscall.Mount("", ro, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	if _, stderr := chrootErr(t, ro, nil, nil, "/bin/sh", "-c", "echo test > /file"); stderr != "/bin/sh: can't create /file: Read-only file system\n" {
		t.Errorf("read-only write said %q", stderr)
	}
	// nonewprivs: setuid root takes effect for an unprivileged user.
	if out := chroot(t, nnp, nil, &syscall.Credential{Uid: 1000, Gid: 1000}, "/usr/local/bin/nnp"); out != "Effective uid: 0\n" {
		t.Errorf("nnp as uid 1000 printed %q", out)
	}
	for _, c := range []struct {
		root string
		args []string
		want string
	}{
		{agnhost, []string{"/agnhost", "--help"}, "logs-generator"},
		{agnhost, []string{"/usr/bin/dig", "-v"}, "DiG 9"},
		{agnhost, []string{"/usr/bin/curl", "--version"}, "curl "},
		{agnhost, []string{"/usr/bin/ip", "-V"}, "iproute2"},
		{agnhost, []string{"/usr/bin/ss", "-V"}, "iproute2"},
		{agnhost, []string{"/bin/sh", "-c", "netstat --help 2>&1; command -v nc; command -v ip"}, "Listening sockets"},
		{agnhost, []string{"/bin/sh", "-c", "command -v nc; command -v ip"}, "/usr/bin/nc\n/usr/bin/ip\n"},
		{agnhost, []string{"/usr/bin/nc", "-h"}, "Zero-I/O mode"},
		{busybox, []string{"/bin/sh", "-c", "nc --help"}, "-z"},
		{agnhost, []string{"/bin/bash", "-c", "echo $BASH_VERSION"}, "."},
		{agnhost, []string{"/coredns", "-plugins"}, "\nkubernetes\n"},
		{dns, []string{"/bin/sh", "-c", "dig -v 2>&1; getent --help"}, "DiG 9"},
	} {
		out, stderr := chrootErr(t, c.root, []string{"PATH=" + strings.TrimPrefix(imagePATH, "PATH=")}, nil, c.args...)
		if !strings.Contains(out+stderr, c.want) {
			t.Errorf("%v printed %q / %q, want %q in it", c.args, out, stderr, c.want)
		}
	}
}

// unpack extracts a's layer into a temporary folder.
func unpack(t *testing.T, a *images.Archive) string {
	t.Helper()
	root := t.TempDir()
	for name, e := range a.Layer {
		dst := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		switch e.Header.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(e.Header.Linkname, dst); err != nil {
				t.Fatal(err)
			}
			continue
		default:
			if err := os.WriteFile(dst, e.Data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// Chmod after writing: it keeps setuid, which the umask and
		// WriteFile would not.
		if err := os.Chmod(dst, e.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func chroot(t *testing.T, root string, env []string, cred *syscall.Credential, args ...string) string {
	t.Helper()
	out, stderr := chrootErr(t, root, env, cred, args...)
	if stderr != "" {
		t.Logf("%v stderr: %s", args, stderr)
	}
	return out
}

// chrootErr runs args in root and returns stdout and stderr; a non-zero
// exit is not an error, the output says what happened.
func chrootErr(t *testing.T, root string, env []string, cred *syscall.Credential, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: cred}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("run %v in %s: %v", args, root, err)
		}
	}
	return stdout.String(), stderr.String()
}
