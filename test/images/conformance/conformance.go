package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/test/images"
)

// DefaultCacheDir is where built programs and image archives are kept when
// neither Config nor $BERTH_CACHE names a folder: the Makefile's default.
const DefaultCacheDir = "/var/cache/berth"

// Config says where Build keeps what it makes.
type Config struct {
	// CacheDir holds the built programs, each in a folder keyed by what it
	// was built from; empty means $BERTH_CACHE, else DefaultCacheDir.
	CacheDir string
	// OutDir receives one docker-archive tar per image; empty means
	// CacheDir/images/conformance.
	OutDir string
}

// withDefaults fills the empty fields.
func (c Config) withDefaults() Config {
	if c.CacheDir == "" {
		c.CacheDir = os.Getenv("BERTH_CACHE")
	}
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir
	}
	if c.OutDir == "" {
		c.OutDir = filepath.Join(c.CacheDir, "images", "conformance")
	}
	return c
}

// Build makes every image of the catalog (the e2e images and CoreDNS) and
// writes each as a docker-archive tar into cfg.OutDir. The programs are
// built by the scripts under test/tools, which keep their output in
// cfg.CacheDir keyed by their inputs, and a tar whose content would not
// change is left alone: a second run builds and writes nothing. The result
// lists one archive per image reference.
//
// Concurrent calls (a runner and a test, in two processes) on the same
// OutDir take turns: the second waits for the first and then finds
// everything up to date.
func Build(ctx context.Context, cfg Config) ([]images.Built, error) {
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("build conformance images: %w", err)
	}
	unlock, err := lockDir(cfg.OutDir)
	if err != nil {
		return nil, fmt.Errorf("build conformance images: %w", err)
	}
	defer unlock()
	p, err := buildParts(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("build conformance images: %w", err)
	}
	var built []images.Built
	for _, img := range catalog(p) {
		path, err := filepath.Abs(filepath.Join(cfg.OutDir, archiveName(img.Ref)))
		if err != nil {
			return nil, fmt.Errorf("build conformance images: %w", err)
		}
		if err := images.WriteCached(ctx, path, img); err != nil {
			return nil, fmt.Errorf("build conformance images: %s: %w", img.Ref, err)
		}
		built = append(built, images.Built{Ref: img.Ref, Path: path})
	}
	return built, nil
}

// lockDir takes an exclusive flock on dir/.lock, waiting for another
// holder; the returned function releases it.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close() // the lock failed; nothing was held
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { _ = f.Close() }, nil // closing releases the flock
}

// archiveName is the tar's file name for ref: its last path element with
// the tag, "registry.k8s.io/e2e-test-images/agnhost:2.55" ->
// "agnhost_2.55.tar".
func archiveName(ref string) string {
	return strings.ReplaceAll(filepath.Base(ref), ":", "_") + ".tar"
}

// buildParts runs the build scripts and gathers their output and the
// Debian programs.
func buildParts(ctx context.Context, cfg Config) (parts, error) {
	var p parts
	root, err := images.RepoRoot()
	if err != nil {
		return p, err
	}
	progDir, err := runScript(ctx, filepath.Join(root, "test/tools/build-e2e-programs.sh"), filepath.Join(cfg.CacheDir, "e2e-programs"))
	if err != nil {
		return p, err
	}
	busyboxDir, err := runScript(ctx, filepath.Join(root, "test/tools/busybox/build.sh"), filepath.Join(cfg.CacheDir, "busybox"))
	if err != nil {
		return p, err
	}
	binDir, err := os.MkdirTemp("", "berth-pause-")
	if err != nil {
		return p, err
	}
	defer os.RemoveAll(binDir)
	bins, err := images.GoBuild(ctx, root, binDir, "./cri/pause/cmd/pause")
	if err != nil {
		return p, err
	}
	p.Pause = bins["pause"]

	busybox := filepath.Join(busyboxDir, "busybox")
	if p.Busybox, err = images.ReadStatic(busybox); err != nil {
		return p, err
	}
	if p.Applets, err = images.ListApplets(ctx, busybox); err != nil {
		return p, err
	}
	for _, f := range []struct {
		dst    *[]byte
		name   string
		static bool
	}{
		{&p.Agnhost, "agnhost", true},
		{&p.Nonewprivs, "nonewprivs", true},
		{&p.CoreDNS, "coredns", true},
		{&p.PorterCert, "localhost.crt", false},
		{&p.PorterKey, "localhost.key", false},
		{&p.KittenJPEG, "kitten.jpg", false},
		{&p.KittenData, "data.json", false},
	} {
		read := os.ReadFile
		if f.static {
			read = images.ReadStatic
		}
		if *f.dst, err = read(filepath.Join(progDir, f.name)); err != nil {
			return p, err
		}
	}
	p.Host, err = hostFiles(ctx, hostPrograms)
	return p, err
}

// runScript runs a build script with its cache folder and returns the
// folder it prints on its last line.
func runScript(ctx context.Context, script, cacheDir string) (string, error) {
	logger := klog.FromContext(ctx)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script, cacheDir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", script, err, tail(stderr.String(), 40))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%s printed %q, want a folder", script, dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", errors.Join(fmt.Errorf("%s printed %q, want a folder", script, dir), err)
	}
	logger.V(2).Info("Build script done", "script", filepath.Base(script), "dir", dir)
	return dir, nil
}

// tail returns the last n lines of s: a failed build's cause is at its end.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
