package testing

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/berthnode/berth/kubelet/volume"
)

// FakeMount is one mount a FakeMounter holds.
type FakeMount struct {
	// Path is the mount point.
	Path string
	// Source is the directory bind-mounted on Path; empty for a tmpfs.
	Source string
	// FSType is the file system type.
	FSType string
	// Options are the mount options as given.
	Options []string
}

// FakeMounter is a volume.Mounter that keeps its mounts in memory. Like the
// kernel it refuses to mount on a missing directory and stacks mounts made
// on the same directory; files written below a fake mount land in the real
// directory. It is safe for concurrent use.
type FakeMounter struct {
	mu     sync.Mutex
	mounts []FakeMount
	busy   map[string]bool
	lazy   []string
	// mountErr, when set, fails every MountTmpfs.
	mountErr error
}

var _ volume.Mounter = &FakeMounter{}

// NewFakeMounter returns a FakeMounter with no mounts.
func NewFakeMounter() *FakeMounter {
	return &FakeMounter{busy: map[string]bool{}}
}

// MountTmpfs records a tmpfs mount on dir.
func (f *FakeMounter) MountTmpfs(dir string, options []string) error {
	f.mu.Lock()
	mountErr := f.mountErr
	f.mu.Unlock()
	if mountErr != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, mountErr)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("mount tmpfs on %s: not a directory", dir)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mounts = append(f.mounts, FakeMount{Path: filepath.Clean(dir), FSType: "tmpfs", Options: slices.Clone(options)})
	return nil
}

// Bind records a bind mount of source on dir, with FSType "bind" and the
// options "bind" and, when readOnly, "ro". Like the kernel it refuses a
// missing source or mount point. Files do not show through: the test sees
// dir's own content.
func (f *FakeMounter) Bind(source, dir string, readOnly bool) error {
	f.mu.Lock()
	mountErr := f.mountErr
	f.mu.Unlock()
	if mountErr != nil {
		return fmt.Errorf("bind mount %s on %s: %w", source, dir, mountErr)
	}
	for _, p := range []string{source, dir} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("bind mount %s on %s: %w", source, dir, err)
		}
	}
	options := []string{"bind"}
	if readOnly {
		options = append(options, "ro")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mounts = append(f.mounts, FakeMount{Path: filepath.Clean(dir), Source: filepath.Clean(source), FSType: "bind", Options: options})
	return nil
}

// Unmount removes the latest mount on dir. A directory marked busy with
// SetBusy is detached lazily, which Lazy reports.
func (f *FakeMounter) Unmount(dir string) error {
	dir = filepath.Clean(dir)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.mounts) - 1; i >= 0; i-- {
		if f.mounts[i].Path != dir {
			continue
		}
		for _, m := range f.mounts[i+1:] {
			if under(m.Path, dir) {
				// The kernel refuses to unmount a mount with mounts on top.
				return fmt.Errorf("unmount %s: %s is mounted below it", dir, m.Path)
			}
		}
		f.mounts = slices.Delete(f.mounts, i, i+1)
		if f.busy[dir] {
			f.lazy = append(f.lazy, dir)
		}
		return nil
	}
	return fmt.Errorf("unmount %s: %w", dir, volume.ErrNotMounted)
}

// List returns the mounts on dir and below it, in mount order.
func (f *FakeMounter) List(dir string) ([]volume.MountPoint, error) {
	dir = filepath.Clean(dir)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []volume.MountPoint
	for _, m := range f.mounts {
		if under(m.Path, dir) {
			out = append(out, volume.MountPoint{Path: m.Path, FSType: m.FSType})
		}
	}
	return out, nil
}

// MountedAt returns the latest mount on dir itself.
func (f *FakeMounter) MountedAt(dir string) (volume.MountPoint, bool, error) {
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err != nil {
		return volume.MountPoint{}, false, fmt.Errorf("stat %s: %w", dir, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.mounts) - 1; i >= 0; i-- {
		if m := f.mounts[i]; m.Path == dir {
			return volume.MountPoint{Path: m.Path, FSType: m.FSType}, true, nil
		}
	}
	return volume.MountPoint{}, false, nil
}

// Mounts returns a copy of every mount held, in mount order.
func (f *FakeMounter) Mounts() []FakeMount {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FakeMount, len(f.mounts))
	for i, m := range f.mounts {
		out[i] = FakeMount{Path: m.Path, Source: m.Source, FSType: m.FSType, Options: slices.Clone(m.Options)}
	}
	return out
}

// AddMount records a mount of fsType on dir as if someone else had made it.
func (f *FakeMounter) AddMount(dir, fsType string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mounts = append(f.mounts, FakeMount{Path: filepath.Clean(dir), FSType: fsType})
}

// SetBusy marks dir as in use, so that unmounting it detaches it lazily.
func (f *FakeMounter) SetBusy(dir string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busy[filepath.Clean(dir)] = true
}

// FailMounts makes every later MountTmpfs and Bind fail with err; nil stops that.
func (f *FakeMounter) FailMounts(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mountErr = err
}

// Lazy returns the directories that were detached lazily because busy.
func (f *FakeMounter) Lazy() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lazy)
}

// under reports whether p is dir or below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) || dir == string(filepath.Separator)
}
