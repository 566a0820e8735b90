package vm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// The image's build script and the files laid over its root file system.
// Both are part of the image's cache key.
var (
	//go:embed build-image.sh
	buildScript []byte
	//go:embed rootfs
	rootfsFiles embed.FS
)

const (
	// DefaultSuite is the Debian release images are built from: the one
	// the test machines run.
	DefaultSuite = "bookworm"
	// DefaultDiskSize is the size of an image's disk. The file is sparse:
	// it takes the space of what is on it (about 800 MiB).
	DefaultDiskSize = 8 << 30
	// keyFormat changes whenever the meaning of the cache key's inputs
	// does, to set old images aside.
	keyFormat = "berth-vm-image/1"
	// completeMarker is written into an image folder once it is whole.
	completeMarker = ".complete"
	// lockPoll is how often BuildImage checks whether another process
	// still builds the same image.
	lockPoll = 2 * time.Second
)

// DefaultPackages returns the Debian packages an image holds by default:
// a kernel with IPVS, systemd as PID 1, a container runtime, and what
// kubeadm's preflight checks and kube-proxy's IPVS mode call.
func DefaultPackages() []string {
	return []string{
		"linux-image-amd64", "systemd", "systemd-sysv", "udev", "dbus",
		"containerd", "runc", "containernetworking-plugins",
		"iptables", "ipvsadm", "conntrack", "ebtables", "ethtool", "socat",
		"kmod", "iproute2", "iputils-ping", "procps", "ca-certificates",
	}
}

// ImageConfig says what image to build, and where to keep it.
type ImageConfig struct {
	// CacheDir holds one folder per image, named by its cache key.
	CacheDir string
	// Suite is the Debian release.
	Suite string
	// Mirror is the Debian mirror, e.g. http://deb.debian.org/debian.
	Mirror string
	// SecurityMirror is the Debian security mirror; empty for none.
	SecurityMirror string
	// Packages are installed on top of debootstrap's minimal base.
	Packages []string
	// DiskSize is the size of the disk in bytes.
	DiskSize int64
	// Clock paces the wait for another process building the same image;
	// nil means the real clock.
	Clock clock.WithTicker
}

// DefaultImageConfig returns the configuration of the default image: the
// default packages, from the mirrors this machine's apt uses, kept under
// $BERTH_CACHE/vm (/var/cache/berth/vm when unset).
func DefaultImageConfig() (ImageConfig, error) {
	mirror, security, err := hostMirrors(DefaultSuite)
	if err != nil {
		return ImageConfig{}, err
	}
	cache := os.Getenv("BERTH_CACHE")
	if cache == "" {
		cache = "/var/cache/berth"
	}
	return ImageConfig{
		CacheDir:       filepath.Join(cache, "vm"),
		Suite:          DefaultSuite,
		Mirror:         mirror,
		SecurityMirror: security,
		Packages:       DefaultPackages(),
		DiskSize:       DefaultDiskSize,
	}, nil
}

// Validate reports every problem of c at once.
func (c *ImageConfig) Validate() error {
	var errs []error
	if !filepath.IsAbs(c.CacheDir) {
		errs = append(errs, fmt.Errorf("cache dir %q: must be an absolute path", c.CacheDir))
	}
	if c.Suite == "" {
		errs = append(errs, errors.New("suite: must be set"))
	}
	if !strings.Contains(c.Mirror, "://") {
		errs = append(errs, fmt.Errorf("mirror %q: must be a URL", c.Mirror))
	}
	if c.SecurityMirror != "" && !strings.Contains(c.SecurityMirror, "://") {
		errs = append(errs, fmt.Errorf("security mirror %q: must be a URL", c.SecurityMirror))
	}
	if !slices.Contains(c.Packages, "linux-image-amd64") || !slices.Contains(c.Packages, "systemd-sysv") {
		errs = append(errs, errors.New("packages: must include linux-image-amd64 and systemd-sysv: the VM boots that kernel into systemd"))
	}
	for _, p := range c.Packages {
		if p == "" || strings.ContainsAny(p, " \t\n'\"$") {
			errs = append(errs, fmt.Errorf("package %q: not a package name", p))
		}
	}
	if c.DiskSize < 2<<30 {
		errs = append(errs, fmt.Errorf("disk size %d: must be at least 2 GiB", c.DiskSize))
	}
	return errors.Join(errs...)
}

// Image is a built VM image: a raw ext4 disk without a partition table,
// and the kernel and initrd that boot it with root=/dev/vda. Nothing ever
// writes to it: each boot writes to an overlay of its own.
type Image struct {
	// Key names the image: a hash of everything it is built from.
	Key string
	// Dir is the image's folder in the cache.
	Dir string
	// Disk is the raw disk.
	Disk string
	// Kernel is the kernel (vmlinuz) installed on the disk.
	Kernel string
	// Initrd is the initrd that goes with Kernel.
	Initrd string
}

// imageAt returns the image with key in dir.
func imageAt(key, dir string) *Image {
	return &Image{
		Key:    key,
		Dir:    dir,
		Disk:   filepath.Join(dir, "disk.raw"),
		Kernel: filepath.Join(dir, "vmlinuz"),
		Initrd: filepath.Join(dir, "initrd.img"),
	}
}

// BuildImage returns the image cfg describes, building it first unless the
// cache already holds it. Concurrent builds of one image, by any process,
// wait for each other. A build takes a few minutes and needs root,
// debootstrap, unshare and mkfs.ext4; ctx bounds it.
func BuildImage(ctx context.Context, cfg ImageConfig) (*Image, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vm image: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	key, err := imageKey(cfg)
	if err != nil {
		return nil, fmt.Errorf("vm image: %w", err)
	}
	img := imageAt(key, filepath.Join(cfg.CacheDir, key))
	if complete(img.Dir) {
		return img, nil
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("vm image: %w", err)
	}
	unlock, err := lockFile(ctx, cfg.Clock, img.Dir+".lock")
	if err != nil {
		return nil, fmt.Errorf("vm image %s: %w", key, err)
	}
	defer unlock()
	if complete(img.Dir) {
		return img, nil
	}
	if err := build(ctx, cfg, img); err != nil {
		return nil, fmt.Errorf("vm image %s: %w", key, err)
	}
	return img, nil
}

// complete tells whether dir holds a whole image.
func complete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, completeMarker))
	return err == nil
}

// imageKey hashes everything an image is built from, apart from the
// packages' versions: an image is built once per machine and key.
func imageKey(cfg ImageConfig) (string, error) {
	h := sha256.New()
	pkgs := slices.Sorted(slices.Values(cfg.Packages))
	pkgs = slices.Compact(pkgs)
	fmt.Fprintf(h, "%s\nsuite %s\nmirror %s\nsecurity %s\ndisk %d\npackages %s\n",
		keyFormat, cfg.Suite, cfg.Mirror, cfg.SecurityMirror, cfg.DiskSize, strings.Join(pkgs, " "))
	fmt.Fprintf(h, "script %x\n", sha256.Sum256(buildScript))
	err := fs.WalkDir(rootfsFiles, "rootfs", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := rootfsFiles.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "file %s %x\n", path, sha256.Sum256(data))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash the image's files: %w", err)
	}
	return cfg.Suite + "-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// lockFile takes an exclusive lock on path, waiting while another process
// holds it. The returned function releases it.
func lockFile(ctx context.Context, clk clock.WithTicker, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	ticker := clk.NewTicker(lockPoll)
	defer ticker.Stop()
	start := clk.Now()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		klog.FromContext(ctx).Info("Waiting for another build of the VM image", "lock", path, "waited", clk.Since(start).Round(time.Second))
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for lock %s: %w", path, context.Cause(ctx))
		case <-ticker.C():
		}
	}
}

// build builds img in a temporary folder beside it and renames that into
// place once it is whole. It holds the image's lock.
func build(ctx context.Context, cfg ImageConfig, img *Image) error {
	logger := klog.FromContext(ctx)
	// What earlier builds left when their process died.
	stale, _ := filepath.Glob(img.Dir + ".build-*")
	for _, dir := range append(stale, img.Dir) {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove a partial build: %w", err)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(img.Dir), filepath.Base(img.Dir)+".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	overlay := filepath.Join(tmp, "overlay")
	if err := writeRootfs(overlay); err != nil {
		return err
	}
	script := filepath.Join(tmp, "build-image.sh")
	if err := os.WriteFile(script, buildScript, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(tmp, "build.log")
	start := time.Now()
	logger.Info("Building the VM image: debootstrap, packages, disk", "key", img.Key, "log", logPath)
	// A mount namespace of its own: whatever the script mounts in the
	// root being built goes away with it, even if it dies half-way.
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--", "/bin/bash", script, tmp)
	cmd.Env = append(os.Environ(),
		"VM_SUITE="+cfg.Suite,
		"VM_MIRROR="+cfg.Mirror,
		"VM_SECURITY="+cfg.SecurityMirror,
		"VM_PACKAGES="+strings.Join(cfg.Packages, " "),
		"VM_OVERLAY="+overlay,
		"VM_DISK_SIZE="+strconv.FormatInt(cfg.DiskSize, 10),
	)
	cmd.WaitDelay = 10 * time.Second
	if err := runLogged(ctx, cmd, logPath); err != nil {
		failed := img.Dir + ".failed.log"
		_ = os.Rename(logPath, failed)
		return fmt.Errorf("build script: %w (log: %s)\n%s", err, failed, tailFile(failed, 30))
	}
	if err := os.RemoveAll(filepath.Join(tmp, "root")); err != nil {
		return err
	}
	if err := os.RemoveAll(overlay); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), nil, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, img.Dir); err != nil {
		return err
	}
	logger.Info("Built the VM image", "key", img.Key, "dir", img.Dir, "took", time.Since(start).Round(time.Second))
	return nil
}

// writeRootfs writes the embedded root file system overlay into dir.
func writeRootfs(dir string) error {
	return fs.WalkDir(rootfsFiles, "rootfs", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, strings.TrimPrefix(path, "rootfs"))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := rootfsFiles.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// runLogged runs cmd with its output going to the file at logPath, and logs
// the steps the script announces ("==> ...") as they come.
func runLogged(ctx context.Context, cmd *exec.Cmd, logPath string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if step, ok := strings.CutPrefix(line, "==> "); ok {
				klog.FromContext(ctx).Info("VM image build", "step", step)
			}
		}
		_, _ = io.Copy(logFile, pr)
	}()
	err = cmd.Run()
	pw.Close()
	<-done
	return err
}

// tailFile returns the last n lines of the file at path, for error messages.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
