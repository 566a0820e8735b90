package atomicwriter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

const (
	// DataLink is the symlink that names the published version directory.
	DataLink = "..data"
	// newDataLink is where the next DataLink is made before being renamed
	// over the current one.
	newDataLink = "..data_tmp"
	// newVisibleLink is where a replacement for a wrong user-visible symlink
	// is made before being renamed over it.
	newVisibleLink = "..link_tmp"
	// versionLayout names version directories after the time they were
	// written, as the kubelet does; the leading ".." hides them from ls and
	// keeps them out of the payload's namespace.
	versionLayout = "..2006_01_02_15_04_05.000000000"

	maxNameLength = 255
	maxPathLength = 4096
)

// ErrInvalidPath is wrapped by the error Write returns for a payload path it
// refuses: empty, absolute, containing "..", starting with "..", or too long.
var ErrInvalidPath = errors.New("invalid payload path")

// File is one file of a payload.
type File struct {
	// Data is the content of the file.
	Data []byte
	// Mode holds the permission bits of the file; the process umask does not
	// apply to them.
	Mode os.FileMode
	// UID, when set, makes the file owned by this user; its group is kept.
	UID *int64
}

// Writer publishes payloads into one directory. It is not safe for
// concurrent use on the same directory: callers serialise writes.
type Writer struct {
	dir   string
	clock clock.PassiveClock
}

// New returns a Writer for dir, which must exist. clk names the version
// directories.
func New(dir string, clk clock.PassiveClock) *Writer {
	return &Writer{dir: dir, clock: clk}
}

// Write makes payload, keyed by relative path, the content of the writer's
// directory and reports whether a new version was published. When the
// published version already holds exactly payload (same paths, content and
// modes) nothing is rewritten, but missing user-visible symlinks are made
// and leftovers of interrupted writes are removed.
//
// prepare, when not nil, is called with the path of a new version directory
// once its files are written and before it is published; it may change
// ownership or permissions there. On any error the published version is
// left as it was.
func (w *Writer) Write(ctx context.Context, payload map[string]File, prepare func(versionDir string) error) (bool, error) {
	logger := klog.FromContext(ctx).WithValues("dir", w.dir)
	files, err := cleanPayload(payload)
	if err != nil {
		return false, err
	}
	current, err := w.currentVersion()
	if err != nil {
		return false, err
	}
	changed := true
	if current != "" {
		same, err := holdsExactly(filepath.Join(w.dir, current), files)
		if err != nil {
			return false, err
		}
		changed = !same
	}
	if changed {
		version, err := w.writeVersion(files, prepare)
		if err != nil {
			return false, err
		}
		if err := w.publish(version); err != nil {
			return false, err
		}
		logger.V(4).Info("Published new version", "version", version, "previous", current, "files", len(files))
		current = version
	}
	top := topLevelNames(files)
	if err := w.linkVisible(top); err != nil {
		return changed, err
	}
	return changed, w.prune(current, top)
}

// cleanPayload validates every path and returns the payload keyed by the
// cleaned paths.
func cleanPayload(payload map[string]File) (map[string]File, error) {
	files := make(map[string]File, len(payload))
	for p, f := range payload {
		if err := validatePath(p); err != nil {
			return nil, err
		}
		clean := filepath.Clean(p)
		if _, dup := files[clean]; dup {
			return nil, fmt.Errorf("%w: %q names the same file as another path", ErrInvalidPath, p)
		}
		files[clean] = f
	}
	return files, nil
}

func validatePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty", ErrInvalidPath)
	case filepath.IsAbs(p):
		return fmt.Errorf("%w: %q is absolute", ErrInvalidPath, p)
	case len(p) > maxPathLength:
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidPath, maxPathLength)
	case filepath.Clean(p) == ".":
		return fmt.Errorf("%w: %q names the directory itself", ErrInvalidPath, p)
	}
	elems := strings.Split(p, string(filepath.Separator))
	for _, e := range elems {
		if e == ".." {
			return fmt.Errorf("%w: %q contains '..'", ErrInvalidPath, p)
		}
		if len(e) > maxNameLength {
			return fmt.Errorf("%w: a name in %q is longer than %d characters", ErrInvalidPath, p, maxNameLength)
		}
	}
	if strings.HasPrefix(filepath.Clean(p), "..") {
		return fmt.Errorf("%w: %q starts with '..', which is reserved", ErrInvalidPath, p)
	}
	return nil
}

// currentVersion returns the name of the published version directory, or
// "" when nothing was published yet.
func (w *Writer) currentVersion() (string, error) {
	target, err := os.Readlink(filepath.Join(w.dir, DataLink))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read published version: %w", err)
	}
	return target, nil
}

// holdsExactly reports whether dir holds exactly the regular files of files,
// with the same content and permission bits.
func holdsExactly(dir string, files map[string]File) (bool, error) {
	seen := 0
	same := true
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		want, ok := files[rel]
		if !ok || !d.Type().IsRegular() {
			same = false
			return filepath.SkipAll
		}
		seen++
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != want.Mode.Perm() || !ownedBy(info, want.UID) {
			same = false
			return filepath.SkipAll
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(data, want.Data) {
			same = false
			return filepath.SkipAll
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		// The link names a version that is gone: write a new one.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("compare published version: %w", err)
	}
	return same && seen == len(files), nil
}

func ownedBy(info fs.FileInfo, uid *int64) bool {
	if uid == nil {
		return true
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && int64(st.Uid) == *uid
}

// writeVersion writes files into a new version directory and returns its
// name. The directory is removed again on error.
func (w *Writer) writeVersion(files map[string]File, prepare func(string) error) (version string, err error) {
	version, err = w.makeVersionDir()
	if err != nil {
		return "", err
	}
	versionDir := filepath.Join(w.dir, version)
	defer func() {
		if err != nil {
			_ = os.RemoveAll(versionDir)
		}
	}()
	for p, f := range files {
		if err := writeFile(versionDir, p, f); err != nil {
			return "", err
		}
	}
	if prepare != nil {
		if err := prepare(versionDir); err != nil {
			return "", fmt.Errorf("prepare version %s: %w", version, err)
		}
	}
	return version, nil
}

// makeVersionDir creates a version directory named after the current time.
// Two writes within one clock reading (a coarse or fake clock) get a numeric
// suffix rather than failing.
func (w *Writer) makeVersionDir() (string, error) {
	base := w.clock.Now().UTC().Format(versionLayout)
	for i := 0; i < 100; i++ {
		name := base
		if i > 0 {
			name = base + "-" + strconv.Itoa(i)
		}
		err := os.Mkdir(filepath.Join(w.dir, name), 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("create version directory: %w", err)
		}
		// Mkdir is subject to the umask; containers running as any user
		// must be able to traverse the version directory.
		if err := os.Chmod(filepath.Join(w.dir, name), 0o755); err != nil {
			return "", fmt.Errorf("create version directory: %w", err)
		}
		return name, nil
	}
	return "", fmt.Errorf("create version directory: too many versions named %s", base)
}

// writeFile writes f at the relative path p below dir, creating the
// intermediate directories with mode 0755.
func writeFile(dir, p string, f File) error {
	parent := dir
	elems := strings.Split(p, string(filepath.Separator))
	for _, e := range elems[:len(elems)-1] {
		parent = filepath.Join(parent, e)
		err := os.Mkdir(parent, 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err == nil {
			err = os.Chmod(parent, 0o755)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	full := filepath.Join(dir, p)
	file, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	_, werr := file.Write(f.Data)
	if cerr := file.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write %s: %w", p, werr)
	}
	// Chmod, not the open mode, so that the umask does not apply.
	if err := os.Chmod(full, f.Mode.Perm()); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if f.UID != nil {
		if err := os.Lchown(full, int(*f.UID), -1); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// publish points DataLink at version in one rename(2).
func (w *Writer) publish(version string) error {
	tmp := filepath.Join(w.dir, newDataLink)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("publish %s: %w", version, err)
	}
	err := os.Symlink(version, tmp)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(w.dir, DataLink))
	}
	if err != nil {
		_ = os.Remove(tmp)
		_ = os.RemoveAll(filepath.Join(w.dir, version))
		return fmt.Errorf("publish %s: %w", version, err)
	}
	return nil
}

// topLevelNames returns the first path element of every payload path: the
// names that get a user-visible symlink.
func topLevelNames(files map[string]File) map[string]bool {
	top := make(map[string]bool, len(files))
	for p := range files {
		first, _, _ := strings.Cut(p, string(filepath.Separator))
		top[first] = true
	}
	return top
}

// linkVisible makes name -> ..data/name for every top-level name.
func (w *Writer) linkVisible(top map[string]bool) error {
	for name := range top {
		want := filepath.Join(DataLink, name)
		link := filepath.Join(w.dir, name)
		info, err := os.Lstat(link)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Symlink(want, link); err != nil {
				return fmt.Errorf("link %s: %w", name, err)
			}
			continue
		case err != nil:
			return fmt.Errorf("link %s: %w", name, err)
		case info.Mode()&fs.ModeSymlink == 0:
			return fmt.Errorf("link %s: a file that is not a symlink is in the way", name)
		}
		if target, err := os.Readlink(link); err == nil && target == want {
			continue
		}
		tmp := filepath.Join(w.dir, newVisibleLink)
		_ = os.Remove(tmp)
		err = os.Symlink(want, tmp)
		if err == nil {
			err = os.Rename(tmp, link)
		}
		if err != nil {
			return fmt.Errorf("link %s: %w", name, err)
		}
	}
	return nil
}

// prune removes what no longer belongs: every reserved ("..") entry but
// DataLink and the published version (older versions, leftovers of
// interrupted writes), and user-visible symlinks into DataLink whose name
// left the payload. Entries the writer did not make are left alone.
func (w *Writer) prune(current string, top map[string]bool) error {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(w.dir, name)
		if strings.HasPrefix(name, "..") {
			if name != DataLink && name != current {
				errs = append(errs, os.RemoveAll(p))
			}
			continue
		}
		if top[name] || e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, DataLink+string(filepath.Separator)) {
			errs = append(errs, os.Remove(p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	return nil
}
