package systemd

import (
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/berthnode/berth/kubelet/atomicfile"
)

// files holds the unit files and the default configuration Install writes:
// data, read-only, package-level only because go:embed requires it.
//
//go:embed files/berth.service files/20-berth.conf files/kubelet.service files/config.yaml
var files embed.FS

// Where Install puts things, as paths on the installed system (Install
// prefixes them with its root).
const (
	// BinaryPath is berth's executable.
	BinaryPath = "/usr/local/bin/berth"
	// ConfigPath is berth's configuration file, read by berth.service.
	ConfigPath = "/etc/berth/config.yaml"
	// UnitPath is berth's own unit, berth.service. Units of locally
	// installed software belong in /usr/local/lib/systemd/system, leaving
	// /etc/systemd/system to the operator's drop-ins.
	UnitPath = "/usr/local/lib/systemd/system/berth.service"
	// KubeletPath is where kubeadm's kubelet.service runs kubelet from;
	// InstallOptions.Kubelet makes it a symlink to BinaryPath.
	KubeletPath = "/usr/bin/kubelet"
	// KubeletDropInPath is berth's drop-in for kubeadm's kubelet.service.
	KubeletDropInPath = "/etc/systemd/system/kubelet.service.d/20-berth.conf"
	// KubeletUnitPath is where Install writes a kubelet.service when the
	// node has none (the kubelet package is not installed).
	KubeletUnitPath = "/usr/local/lib/systemd/system/kubelet.service"
)

// Unit names.
const (
	// BerthUnit is berth's own unit.
	BerthUnit = "berth.service"
	// KubeletUnit is kubeadm's kubelet unit.
	KubeletUnit = "kubelet.service"
)

// ErrKubeletInstalled is returned when InstallOptions.Kubelet would replace a
// kubelet binary (not a symlink) without InstallOptions.ReplaceKubelet.
var ErrKubeletInstalled = errors.New("a kubelet binary is installed")

// InstallOptions says what Install installs.
type InstallOptions struct {
	// Binary is the berth executable to install. Empty: the running one.
	Binary string
	// Kubelet also installs berth as kubeadm's kubelet: the symlink
	// KubeletPath -> BinaryPath, the kubelet.service drop-in, and a
	// kubelet.service if the node has none. Without it, berth.service is
	// the unit to enable.
	Kubelet bool
	// ReplaceKubelet lets Kubelet replace a kubelet binary at KubeletPath.
	// Its package puts it back on upgrade: rather remove the kubelet
	// package, or divert the file (dpkg-divert --rename /usr/bin/kubelet).
	ReplaceKubelet bool
}

// InstallResult says what Install did and what to do next.
type InstallResult struct {
	// Changed lists the files Install wrote, as paths on the installed
	// system, in the order written. Empty when everything was in place.
	Changed []string
	// Kept lists files Install left alone because they are the operator's:
	// an existing configuration file.
	Kept []string
	// Commands are what to run next on the installed system, in order:
	// systemctl daemon-reload when a unit changed, disabling the unit that
	// conflicts, restarting a running berth whose files changed, and
	// enabling the chosen unit. Install runs none of them, so that it
	// works on an image or a chroot, and in tests.
	Commands [][]string
}

// Install installs berth under root ("/" or "" for this system; a
// directory that will become a node's root file system otherwise): the
// binary at BinaryPath, berth.service at UnitPath, a default configuration
// at ConfigPath unless one exists, and with opts.Kubelet the kubelet
// symlink, drop-in and, if missing, unit. Running it again changes nothing
// that is already in place; files are replaced atomically, so a running
// berth keeps its binary.
func Install(root string, opts InstallOptions) (*InstallResult, error) {
	if root == "" {
		root = "/"
	}
	src := opts.Binary
	if src == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the berth executable: %w", err)
		}
		src = exe
	}
	in := &installer{root: root, result: &InstallResult{}}
	if err := in.binary(src); err != nil {
		return nil, err
	}
	if err := in.embedded(UnitPath, "berth.service", true); err != nil {
		return nil, err
	}
	if err := in.config(); err != nil {
		return nil, err
	}
	if opts.Kubelet {
		if err := in.kubelet(opts.ReplaceKubelet); err != nil {
			return nil, err
		}
	}
	in.result.Commands = in.commands(opts.Kubelet)
	return in.result, nil
}

// installer carries Install's state.
type installer struct {
	root   string
	result *InstallResult
	// unitsChanged is whether a unit file or drop-in was written.
	unitsChanged bool
}

// path returns the host path of a path on the installed system.
func (in *installer) path(p string) string { return filepath.Join(in.root, p) }

// changed records a written file.
func (in *installer) changed(p string, unit bool) {
	in.result.Changed = append(in.result.Changed, p)
	in.unitsChanged = in.unitsChanged || unit
}

// binary installs the executable at src as BinaryPath.
func (in *installer) binary(src string) error {
	dst := in.path(BinaryPath)
	srcInfo, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("berth executable: %w", err)
	}
	if dstInfo, err := os.Stat(dst); err == nil {
		if os.SameFile(srcInfo, dstInfo) {
			return nil
		}
		same, err := sameContent(src, dst)
		if err != nil {
			return err
		}
		if same && dstInfo.Mode().Perm() == 0o755 {
			return nil
		}
	}
	if err := copyFileAtomic(src, dst, 0o755); err != nil {
		return fmt.Errorf("installing berth: %w", err)
	}
	in.changed(BinaryPath, false)
	return nil
}

// embedded installs the embedded file name at p.
func (in *installer) embedded(p, name string, unit bool) error {
	data, err := files.ReadFile("files/" + name)
	if err != nil {
		return fmt.Errorf("embedded %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(in.path(p)), 0o755); err != nil {
		return fmt.Errorf("installing %s: %w", p, err)
	}
	changed, err := atomicfile.WriteIfChanged(in.path(p), data, 0o644)
	if err != nil {
		return fmt.Errorf("installing %s: %w", p, err)
	}
	if changed {
		in.changed(p, unit)
	}
	return nil
}

// config writes the default configuration unless the node has one.
func (in *installer) config() error {
	_, err := os.Lstat(in.path(ConfigPath))
	switch {
	case err == nil:
		in.result.Kept = append(in.result.Kept, ConfigPath)
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("berth configuration: %w", err)
	}
	return in.embedded(ConfigPath, "config.yaml", false)
}

// kubelet installs berth as kubeadm's kubelet.
func (in *installer) kubelet(replace bool) error {
	if err := in.kubeletSymlink(replace); err != nil {
		return err
	}
	if err := in.embedded(KubeletDropInPath, "20-berth.conf", true); err != nil {
		return err
	}
	if in.hasForeignKubeletUnit() {
		return nil
	}
	return in.embedded(KubeletUnitPath, "kubelet.service", true)
}

// kubeletSymlink makes KubeletPath a symlink to BinaryPath.
func (in *installer) kubeletSymlink(replace bool) error {
	link := in.path(KubeletPath)
	info, err := os.Lstat(link)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("kubelet symlink: %w", err)
	case info.Mode()&fs.ModeSymlink != 0:
		if target, err := os.Readlink(link); err == nil && target == BinaryPath {
			return nil
		}
	case info.Mode().IsRegular() && replace:
	case info.Mode().IsRegular():
		return fmt.Errorf("%s: %w; remove the kubelet package first, or replace it on purpose (ReplaceKubelet)", KubeletPath, ErrKubeletInstalled)
	default:
		return fmt.Errorf("kubelet symlink: %s is a %v, not a file", KubeletPath, info.Mode().Type())
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("kubelet symlink: %w", err)
	}
	// Build the new link beside the old path and rename it over, so that
	// /usr/bin/kubelet never goes missing.
	tmp := link + ".berth-new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kubelet symlink: %w", err)
	}
	if err := os.Symlink(BinaryPath, tmp); err != nil {
		return fmt.Errorf("kubelet symlink: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		return fmt.Errorf("kubelet symlink: %w", err)
	}
	in.changed(KubeletPath, false)
	return nil
}

// systemUnitDirs are where systemd looks for system units, except
// KubeletUnitPath's directory (berth's own).
func systemUnitDirs() []string {
	return []string{"/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}
}

// hasForeignKubeletUnit reports whether a kubelet.service other than
// berth's exists (the kubelet package's, or the operator's).
func (in *installer) hasForeignKubeletUnit() bool {
	for _, dir := range systemUnitDirs() {
		if _, err := os.Lstat(in.path(filepath.Join(dir, KubeletUnit))); err == nil {
			return true
		}
	}
	return false
}

// enabled reports whether unit is enabled for boot.
func (in *installer) enabled(unit string) bool {
	_, err := os.Lstat(in.path(filepath.Join("/etc/systemd/system/multi-user.target.wants", unit)))
	return err == nil
}

// commands returns what to run after installing, for the unit chosen.
func (in *installer) commands(kubelet bool) [][]string {
	var cmds [][]string
	if in.unitsChanged {
		cmds = append(cmds, []string{"systemctl", "daemon-reload"})
	}
	chosen, other := BerthUnit, KubeletUnit
	if kubelet {
		chosen, other = KubeletUnit, BerthUnit
	}
	if in.enabled(other) {
		cmds = append(cmds, []string{"systemctl", "disable", "--now", other})
	}
	if len(in.result.Changed) > 0 {
		// Restarts the unit only if it runs: an upgrade.
		cmds = append(cmds, []string{"systemctl", "try-restart", chosen})
	}
	if kubelet {
		// kubeadm join starts kubelet.service once it wrote its files.
		cmds = append(cmds, []string{"systemctl", "enable", chosen})
	} else {
		cmds = append(cmds, []string{"systemctl", "enable", "--now", chosen})
	}
	return cmds
}

// copyFileAtomic copies src to dst with mode through a temporary file
// renamed over dst.
func copyFileAtomic(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFunc(dst, mode, func(f *os.File) error {
		_, err := io.Copy(f, in)
		return err
	})
}

// sameContent reports whether files a and b hold the same bytes.
func sameContent(a, b string) (bool, error) {
	ha, err := fileHash(a)
	if err != nil {
		return false, err
	}
	hb, err := fileHash(b)
	if err != nil {
		return false, err
	}
	return ha == hb, nil
}

// fileHash returns the SHA-256 of the file at p.
func fileHash(p string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("reading %s: %w", p, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
