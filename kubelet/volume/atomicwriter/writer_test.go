package atomicwriter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
)

var start = time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.UTC)

// entry is what a test sees at one path of the volume directory.
type entry struct {
	Link string      // symlink target, for symlinks
	Data string      // content, for regular files
	Mode fs.FileMode // permission bits, for regular files and directories
	Dir  bool
}

// snapshot returns every path below dir without following symlinks.
func snapshot(t *testing.T, dir string) map[string]entry {
	t.Helper()
	got := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			got[rel] = entry{Link: target}
		case d.IsDir():
			got[rel] = entry{Dir: true, Mode: info.Mode().Perm()}
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got[rel] = entry{Data: string(data), Mode: info.Mode().Perm()}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return got
}

func TestWriteLayout(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, clocktesting.NewFakePassiveClock(start))
	changed, err := w.Write(context.Background(), map[string]File{
		"token":        {Data: []byte("t0k3n"), Mode: 0o600},
		"ca.crt":       {Data: []byte("CERT"), Mode: 0o644},
		"conf/app.yml": {Data: []byte("a: 1"), Mode: 0o400},
		"./namespace":  {Data: []byte("default"), Mode: 0o644},
	}, nil)
	if err != nil || !changed {
		t.Fatalf("Write() = %v, %v; want true, nil", changed, err)
	}
	v := "..2026_11_26_10_00_00.123456789"
	want := map[string]entry{
		"..data":            {Link: v},
		v:                   {Dir: true, Mode: 0o755},
		v + "/token":        {Data: "t0k3n", Mode: 0o600},
		v + "/ca.crt":       {Data: "CERT", Mode: 0o644},
		v + "/conf":         {Dir: true, Mode: 0o755},
		v + "/conf/app.yml": {Data: "a: 1", Mode: 0o400},
		v + "/namespace":    {Data: "default", Mode: 0o644},
		"token":             {Link: "..data/token"},
		"ca.crt":            {Link: "..data/ca.crt"},
		"conf":              {Link: "..data/conf"},
		"namespace":         {Link: "..data/namespace"},
	}
	if diff := cmp.Diff(want, snapshot(t, dir)); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
	data, err := os.ReadFile(filepath.Join(dir, "conf/app.yml"))
	if err != nil || string(data) != "a: 1" {
		t.Errorf("read through links = %q, %v", data, err)
	}
}

func TestWriteUpdates(t *testing.T) {
	v0 := "..2026_11_26_10_00_00.123456789"
	v1 := "..2026_11_26_10_01_00.123456789"
	tests := []struct {
		name        string
		first, next map[string]File
		wantChanged bool
		want        map[string]entry
	}{{
		name:        "unchanged content is not rewritten",
		first:       map[string]File{"a": {Data: []byte("1"), Mode: 0o644}},
		next:        map[string]File{"a": {Data: []byte("1"), Mode: 0o644}},
		wantChanged: false,
		want: map[string]entry{
			"..data": {Link: v0}, v0: {Dir: true, Mode: 0o755},
			v0 + "/a": {Data: "1", Mode: 0o644}, "a": {Link: "..data/a"},
		},
	}, {
		name:        "changed content gets a new version and the old one goes",
		first:       map[string]File{"a": {Data: []byte("1"), Mode: 0o644}},
		next:        map[string]File{"a": {Data: []byte("2"), Mode: 0o644}},
		wantChanged: true,
		want: map[string]entry{
			"..data": {Link: v1}, v1: {Dir: true, Mode: 0o755},
			v1 + "/a": {Data: "2", Mode: 0o644}, "a": {Link: "..data/a"},
		},
	}, {
		name:        "changed mode gets a new version",
		first:       map[string]File{"a": {Data: []byte("1"), Mode: 0o644}},
		next:        map[string]File{"a": {Data: []byte("1"), Mode: 0o600}},
		wantChanged: true,
		want: map[string]entry{
			"..data": {Link: v1}, v1: {Dir: true, Mode: 0o755},
			v1 + "/a": {Data: "1", Mode: 0o600}, "a": {Link: "..data/a"},
		},
	}, {
		name: "removed keys lose their visible link",
		first: map[string]File{
			"a": {Data: []byte("1"), Mode: 0o644}, "b": {Data: []byte("2"), Mode: 0o644},
			"d/c": {Data: []byte("3"), Mode: 0o644},
		},
		next:        map[string]File{"a": {Data: []byte("1"), Mode: 0o644}},
		wantChanged: true,
		want: map[string]entry{
			"..data": {Link: v1}, v1: {Dir: true, Mode: 0o755},
			v1 + "/a": {Data: "1", Mode: 0o644}, "a": {Link: "..data/a"},
		},
	}, {
		name:        "added keys get a visible link",
		first:       map[string]File{"a": {Data: []byte("1"), Mode: 0o644}},
		next:        map[string]File{"a": {Data: []byte("1"), Mode: 0o644}, "b": {Data: []byte("2"), Mode: 0o644}},
		wantChanged: true,
		want: map[string]entry{
			"..data": {Link: v1}, v1: {Dir: true, Mode: 0o755},
			v1 + "/a": {Data: "1", Mode: 0o644}, v1 + "/b": {Data: "2", Mode: 0o644},
			"a": {Link: "..data/a"}, "b": {Link: "..data/b"},
		},
	}, {
		name:        "empty payload empties the volume",
		first:       map[string]File{"a": {Data: []byte("1"), Mode: 0o644}},
		next:        map[string]File{},
		wantChanged: true,
		want:        map[string]entry{"..data": {Link: v1}, v1: {Dir: true, Mode: 0o755}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := clocktesting.NewFakePassiveClock(start)
			w := New(dir, clk)
			ctx := context.Background()
			if _, err := w.Write(ctx, tc.first, nil); err != nil {
				t.Fatalf("first Write: %v", err)
			}
			clk.SetTime(start.Add(time.Minute))
			changed, err := w.Write(ctx, tc.next, nil)
			if err != nil {
				t.Fatalf("second Write: %v", err)
			}
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if diff := cmp.Diff(tc.want, snapshot(t, dir)); diff != "" {
				t.Errorf("layout (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteRepairsWithoutRewriting(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, clocktesting.NewFakePassiveClock(start))
	ctx := context.Background()
	payload := map[string]File{"a": {Data: []byte("1"), Mode: 0o644}}
	if _, err := w.Write(ctx, payload, nil); err != nil {
		t.Fatal(err)
	}
	v := "..2026_11_26_10_00_00.123456789"
	// A lost visible link, leftovers of an interrupted write and a link
	// pointing elsewhere.
	mustDo(t, os.Remove(filepath.Join(dir, "a")))
	mustDo(t, os.Mkdir(filepath.Join(dir, "..2026_11_26_09_00_00.000000001"), 0o755))
	mustDo(t, os.Symlink("..2026_11_26_09_00_00.000000001", filepath.Join(dir, "..data_tmp")))
	mustDo(t, os.Symlink("..data/gone", filepath.Join(dir, "gone")))
	mustDo(t, os.WriteFile(filepath.Join(dir, "not-ours"), []byte("x"), 0o644))

	changed, err := w.Write(ctx, payload, nil)
	if err != nil || changed {
		t.Fatalf("Write() = %v, %v; want false, nil", changed, err)
	}
	want := map[string]entry{
		"..data": {Link: v}, v: {Dir: true, Mode: 0o755},
		v + "/a": {Data: "1", Mode: 0o644}, "a": {Link: "..data/a"},
		"not-ours": {Data: "x", Mode: 0o644},
	}
	if diff := cmp.Diff(want, snapshot(t, dir)); diff != "" {
		t.Errorf("layout (-want +got):\n%s", diff)
	}
}

func TestWriteSameClockReading(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, clocktesting.NewFakePassiveClock(start))
	ctx := context.Background()
	for i := range 3 {
		if _, err := w.Write(ctx, map[string]File{"a": {Data: []byte{byte('0' + i)}, Mode: 0o644}}, nil); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
	got, err := os.ReadFile(filepath.Join(dir, "a"))
	if err != nil || string(got) != "2" {
		t.Errorf("a = %q, %v; want \"2\"", got, err)
	}
}

func TestWriteInvalidPaths(t *testing.T) {
	for _, p := range []string{"", ".", "/abs", "../up", "a/../../b", "..hidden", "..data", "a/" + strings.Repeat("x", 256), strings.Repeat("a/", 2049)} {
		t.Run(p, func(t *testing.T) {
			dir := t.TempDir()
			_, err := New(dir, clocktesting.NewFakePassiveClock(start)).Write(context.Background(), map[string]File{p: {Mode: 0o644}}, nil)
			if !errors.Is(err, ErrInvalidPath) {
				t.Errorf("Write(%q) error = %v, want ErrInvalidPath", p, err)
			}
			if diff := cmp.Diff(map[string]entry{}, snapshot(t, dir)); diff != "" {
				t.Errorf("directory changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteFailureKeepsPublishedVersion(t *testing.T) {
	dir := t.TempDir()
	clk := clocktesting.NewFakePassiveClock(start)
	w := New(dir, clk)
	ctx := context.Background()
	if _, err := w.Write(ctx, map[string]File{"a": {Data: []byte("1"), Mode: 0o644}}, nil); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	clk.SetTime(start.Add(time.Minute))

	errBoom := errors.New("boom")
	var sawUnpublished bool
	_, err := w.Write(ctx, map[string]File{"a": {Data: []byte("2"), Mode: 0o644}}, func(versionDir string) error {
		published, _ := os.Readlink(filepath.Join(dir, DataLink))
		sawUnpublished = published != filepath.Base(versionDir)
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Write error = %v, want %v", err, errBoom)
	}
	if !sawUnpublished {
		t.Error("prepare ran after the version was published")
	}
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("a failed write changed the directory (-want +got):\n%s", diff)
	}

	// A conflicting entry a writer did not make is an error, not a loss.
	mustDo(t, os.WriteFile(filepath.Join(dir, "b"), []byte("mine"), 0o644))
	if _, err := w.Write(ctx, map[string]File{"b": {Data: []byte("2"), Mode: 0o644}}, nil); err == nil {
		t.Error("Write over a foreign file succeeded, want an error")
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "b")); string(data) != "mine" {
		t.Errorf("foreign file = %q, want it kept", data)
	}
}

// TestWriteReadersSeeWholeVersions has readers resolve ..data once and read
// two files that each writer version fills with the same value: they must
// always agree and never be partial.
func TestWriteReadersSeeWholeVersions(t *testing.T) {
	dir := t.TempDir()
	clk := clocktesting.NewFakePassiveClock(start)
	w := New(dir, clk)
	ctx := context.Background()
	version := func(i int) map[string]File {
		v := []byte(fmt.Sprintf("version-%04d|%s", i, strings.Repeat("x", 64*1024)))
		return map[string]File{"a": {Data: v, Mode: 0o644}, "sub/b": {Data: v, Mode: 0o644}}
	}
	if _, err := w.Write(ctx, version(0), nil); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var consistent atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				target, err := os.Readlink(filepath.Join(dir, DataLink))
				if err != nil {
					errs <- err
					return
				}
				a, errA := os.ReadFile(filepath.Join(dir, target, "a"))
				b, errB := os.ReadFile(filepath.Join(dir, target, "sub/b"))
				if errors.Is(errA, fs.ErrNotExist) || errors.Is(errB, fs.ErrNotExist) {
					continue // that version was replaced and removed meanwhile
				}
				if errA != nil || errB != nil {
					errs <- errors.Join(errA, errB)
					return
				}
				if string(a) != string(b) || len(a) != len(version(0)["a"].Data) {
					errs <- fmt.Errorf("mixed or partial version: %.12q vs %.12q (%d, %d bytes)", a, b, len(a), len(b))
					return
				}
				consistent.Add(1)
				if v, err := os.ReadFile(filepath.Join(dir, "a")); err == nil && len(v) != len(a) {
					errs <- fmt.Errorf("partial file through the visible link: %d bytes", len(v))
					return
				}
			}
		}()
	}
	for i := 1; i <= 200; i++ {
		clk.SetTime(start.Add(time.Duration(i) * time.Millisecond))
		if _, err := w.Write(ctx, version(i), nil); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if consistent.Load() == 0 {
		t.Error("readers made no consistent read at all")
	}
	var versions []string
	for name := range snapshot(t, dir) {
		if strings.HasPrefix(name, "..2026") && !strings.Contains(name, "/") {
			versions = append(versions, name)
		}
	}
	sort.Strings(versions)
	if len(versions) != 1 {
		t.Errorf("version directories left = %v, want exactly one", versions)
	}
}

func TestWriteOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root; run as root to cover File.UID")
	}
	dir := t.TempDir()
	uid := int64(4242)
	w := New(dir, clocktesting.NewFakePassiveClock(start))
	payload := map[string]File{"token": {Data: []byte("t"), Mode: 0o600, UID: &uid}}
	if _, err := w.Write(context.Background(), payload, nil); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	if !ownedBy(info, &uid) {
		t.Errorf("token not owned by %d", uid)
	}
	changed, err := w.Write(context.Background(), payload, nil)
	if err != nil || changed {
		t.Errorf("rewrite of an owned file = %v, %v; want false, nil", changed, err)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
