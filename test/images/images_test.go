package images

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// summary is what the tests check of an image archive.
type summary struct {
	RepoTags   []string
	Entrypoint []string
	Cmd        []string
	// Layer describes the chosen layer entries: "dir", "-> target", or
	// "file MODE" followed by " elf" for an executable.
	Layer map[string]string
}

// summarize reads the archive at path and describes the layer entries named
// in want.
func summarize(t *testing.T, path string, want []string) summary {
	t.Helper()
	a, err := ReadArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	s := summary{RepoTags: a.RepoTags, Entrypoint: a.Entrypoint, Cmd: a.Cmd, Layer: map[string]string{}}
	for _, name := range want {
		if e, ok := a.Layer[name]; ok {
			s.Layer[name] = e.Describe()
		} else {
			s.Layer[name] = ""
		}
	}
	return s
}

func TestBuild(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH; cannot compile the images' programs")
	}
	if _, err := ReadStatic(busyboxPath); err != nil {
		t.Skipf("no static busybox (install Debian's busybox-static): %v", err)
	}
	dir := t.TempDir()
	built, err := Build(context.Background(), dir)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	want := []Built{
		{Ref: PauseRef, Path: filepath.Join(dir, "pause.tar")},
		{Ref: BusyboxRef, Path: filepath.Join(dir, "busybox.tar")},
		{Ref: EchoRef, Path: filepath.Join(dir, "echo.tar")},
	}
	if diff := cmp.Diff(want, built); diff != "" {
		t.Fatalf("Build (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		path string
		want summary
	}{
		{path: built[0].Path, want: summary{
			RepoTags:   []string{PauseRef},
			Entrypoint: []string{"/pause"},
			Layer:      map[string]string{"pause": "file -rwxr-xr-x elf"},
		}},
		{path: built[1].Path, want: summary{
			RepoTags: []string{BusyboxRef},
			Cmd:      []string{"sh"},
			Layer: map[string]string{
				"bin/":        "dir",
				"bin/busybox": "file -rwxr-xr-x elf",
				"bin/sh":      "-> busybox",
				"bin/wget":    "-> busybox",
				"tmp/":        "dir",
			},
		}},
		{path: built[2].Path, want: summary{
			RepoTags:   []string{EchoRef},
			Entrypoint: []string{"/echo"},
			Cmd:        []string{"serve"},
			Layer:      map[string]string{"echo": "file -rwxr-xr-x elf"},
		}},
	} {
		var names []string
		for name := range tc.want.Layer {
			names = append(names, name)
		}
		if diff := cmp.Diff(tc.want, summarize(t, tc.path, names)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", filepath.Base(tc.path), diff)
		}
	}

	// A second build finds every tar up to date and leaves it alone.
	var before []os.FileInfo
	for _, b := range built {
		fi, err := os.Stat(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		before = append(before, fi)
	}
	again, err := Build(context.Background(), dir)
	if err != nil {
		t.Fatalf("second Build: %v", err)
	}
	for i, b := range again {
		fi, err := os.Stat(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(before[i], fi) {
			t.Errorf("second Build rewrote %s", b.Path)
		}
	}
}

func TestWriteCachedRewritesChangedInputs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "echo.tar")
	ctx := context.Background()
	if err := WriteCached(ctx, path, echoImage([]byte("v1"))); err != nil {
		t.Fatal(err)
	}
	first, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCached(ctx, path, echoImage([]byte("v2"))); err != nil {
		t.Fatal(err)
	}
	second, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(first, second) {
		t.Errorf("changed binary did not rewrite %s", path)
	}
	got := summarize(t, path, []string{"echo"}).Layer["echo"]
	if got != "v2" {
		t.Errorf("layer holds %q, want the new binary", got)
	}
	// A tar removed behind the record's back is rebuilt.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := WriteCached(ctx, path, echoImage([]byte("v2"))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("missing tar not rebuilt: %v", err)
	}
}

func TestParseApplets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		list    string
		want    []string
		wantErr bool
	}{
		{name: "list", list: "[\n[[\nsh\nbusybox\nls\nsh\n", want: []string{"[", "[[", "sh", "ls"}},
		{name: "empty", list: "\n", wantErr: true},
		{name: "path", list: "sh\nusr/bin/ls\n", wantErr: true},
		{name: "dot-dot", list: "..\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseApplets(tc.list)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseApplets() error = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseApplets() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "test", "images", "images.go")); err != nil {
		t.Errorf("RepoRoot() = %s, which does not hold this package: %v", root, err)
	}
}
