package testing

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthnode/berth/kubelet/volume"
	"github.com/google/go-cmp/cmp"
)

// RunMounterSuite checks the behaviour package volume relies on from a
// Mounter. root is an empty directory with symlinks resolved; the suite
// mounts only below it and leaves nothing mounted when it passes.
func RunMounterSuite(t *testing.T, m volume.Mounter, root string) {
	s := &mounterSuite{m: m, root: root}
	t.Run("nothing mounted", s.nothingMounted)
	t.Run("missing directory", s.missingDirectory)
	t.Run("mount lists under its parents only", s.listsUnderParents)
	t.Run("stacked and nested mounts", s.stackedAndNested)
	t.Run("mounted at a directory itself", s.mountedAt)
	t.Run("bind mount", s.bind)
}

type mounterSuite struct {
	m    volume.Mounter
	root string
}

func (s *mounterSuite) nothingMounted(t *testing.T) {
	dir := s.mkdir(t, "empty")
	if got := s.list(t, dir); len(got) != 0 {
		t.Errorf("List = %v, want none", got)
	}
	if err := s.m.Unmount(dir); !errors.Is(err, volume.ErrNotMounted) {
		t.Errorf("Unmount of a plain directory = %v, want ErrNotMounted", err)
	}
}

func (s *mounterSuite) missingDirectory(t *testing.T) {
	missing := filepath.Join(s.root, "missing")
	if err := s.m.MountTmpfs(missing, nil); err == nil {
		t.Error("MountTmpfs on a missing directory succeeded")
		_ = s.m.Unmount(missing)
	}
}

func (s *mounterSuite) listsUnderParents(t *testing.T) {
	dir := s.mkdir(t, "list", "a")
	sibling := s.mkdir(t, "list", "ab")
	s.mount(t, dir)
	want := []volume.MountPoint{{Path: dir, FSType: "tmpfs"}}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if diff := cmp.Diff(want, s.list(t, d)); diff != "" {
			t.Errorf("List(%s) (-want +got):\n%s", d, diff)
		}
	}
	if got := s.list(t, sibling); len(got) != 0 {
		t.Errorf("List(%s) = %v, want none", sibling, got)
	}
	s.unmount(t, dir)
	if got := s.list(t, dir); len(got) != 0 {
		t.Errorf("after Unmount, List = %v, want none", got)
	}
}

func (s *mounterSuite) stackedAndNested(t *testing.T) {
	dir := s.mkdir(t, "stack")
	s.mount(t, dir)
	s.mount(t, dir)
	nested := s.mkdir(t, "stack", "nested")
	s.mount(t, nested)
	want := []volume.MountPoint{{Path: dir, FSType: "tmpfs"}, {Path: dir, FSType: "tmpfs"}, {Path: nested, FSType: "tmpfs"}}
	if diff := cmp.Diff(want, s.list(t, dir)); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	s.unmount(t, nested)
	s.unmount(t, dir)
	if diff := cmp.Diff(want[:1], s.list(t, dir)); diff != "" {
		t.Errorf("after two unmounts, List (-want +got):\n%s", diff)
	}
	s.unmount(t, dir)
	if got := s.list(t, dir); len(got) != 0 {
		t.Errorf("after three unmounts, List = %v, want none", got)
	}
}

func (s *mounterSuite) mountedAt(t *testing.T) {
	dir := s.mkdir(t, "at")
	if mp, ok := s.at(t, dir); ok {
		t.Errorf("MountedAt(plain directory) = %v, want none", mp)
	}
	s.mount(t, dir)
	inside := s.mkdir(t, "at", "inside")
	want := volume.MountPoint{Path: dir, FSType: "tmpfs"}
	if mp, ok := s.at(t, dir); !ok || mp != want {
		t.Errorf("MountedAt(mounted) = %v, %t; want %v", mp, ok, want)
	}
	if mp, ok := s.at(t, inside); ok {
		t.Errorf("MountedAt(a directory inside a mount) = %v, want none", mp)
	}
	s.unmount(t, dir)
	if mp, ok := s.at(t, dir); ok {
		t.Errorf("after Unmount, MountedAt = %v, want none", mp)
	}
	if _, _, err := s.m.MountedAt(filepath.Join(s.root, "missing")); err == nil {
		t.Error("MountedAt(missing directory): no error")
	}
}

func (s *mounterSuite) bind(t *testing.T) {
	source := s.mkdir(t, "bind", "source")
	dir := s.mkdir(t, "bind", "target")
	if err := s.m.Bind(filepath.Join(s.root, "bind", "missing"), dir, false); err == nil {
		t.Error("Bind of a missing source succeeded")
		_ = s.m.Unmount(dir)
	}
	for _, readOnly := range []bool{false, true} {
		if err := s.m.Bind(source, dir, readOnly); err != nil {
			t.Fatalf("Bind(readOnly %t): %v", readOnly, err)
		}
		if _, ok := s.at(t, dir); !ok {
			t.Errorf("MountedAt(bind mount, readOnly %t): none", readOnly)
		}
		if got := s.list(t, filepath.Dir(dir)); len(got) != 1 || got[0].Path != dir {
			t.Errorf("List = %v, want the bind mount on %s alone", got, dir)
		}
		s.unmount(t, dir)
		if mp, ok := s.at(t, dir); ok {
			t.Errorf("after Unmount, MountedAt = %v, want none", mp)
		}
	}
	if _, err := os.Stat(source); err != nil {
		t.Errorf("source after unmount: %v", err)
	}
}

func (s *mounterSuite) at(t *testing.T, dir string) (volume.MountPoint, bool) {
	t.Helper()
	mp, ok, err := s.m.MountedAt(dir)
	if err != nil {
		t.Fatalf("MountedAt(%s): %v", dir, err)
	}
	return mp, ok
}

func (s *mounterSuite) mkdir(t *testing.T, parts ...string) string {
	t.Helper()
	dir := filepath.Join(append([]string{s.root}, parts...)...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (s *mounterSuite) list(t *testing.T, dir string) []volume.MountPoint {
	t.Helper()
	mounts, err := s.m.List(dir)
	if err != nil {
		t.Fatalf("List(%s): %v", dir, err)
	}
	return mounts
}

func (s *mounterSuite) mount(t *testing.T, dir string) {
	t.Helper()
	if err := s.m.MountTmpfs(dir, []string{"size=1048576"}); err != nil {
		t.Fatalf("MountTmpfs(%s): %v", dir, err)
	}
}

func (s *mounterSuite) unmount(t *testing.T, dir string) {
	t.Helper()
	if err := s.m.Unmount(dir); err != nil {
		t.Fatalf("Unmount(%s): %v", dir, err)
	}
}
