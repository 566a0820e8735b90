package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesAndLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, content := range []string{"first", "second, longer"} {
		if err := Write(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600", info.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(entries))
	}
}

func TestWriteFailsInMissingDirectory(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "state"), []byte("x"), 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestWriteFuncKeepsTheOldFileWhenFillFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := Write(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("half written")
	err := WriteFunc(path, 0o644, func(f *os.File) error {
		_, _ = f.WriteString("new, but only half")
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("WriteFunc = %v, want %v", err, failed)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "old" {
		t.Errorf("read %q, %v; want the old content", got, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(entries))
	}
}

func TestWriteIfChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "unit")
	for _, step := range []struct {
		data      string
		perm      os.FileMode
		wantWrote bool
	}{
		{"a", 0o644, true},  // new
		{"a", 0o644, false}, // the same
		{"b", 0o644, true},  // other content
		{"b", 0o600, true},  // other mode
		{"b", 0o600, false},
	} {
		wrote, err := WriteIfChanged(path, []byte(step.data), step.perm)
		if err != nil || wrote != step.wantWrote {
			t.Fatalf("WriteIfChanged(%q, %v) = %v, %v; want %v", step.data, step.perm, wrote, err, step.wantWrote)
		}
		got, _ := os.ReadFile(path)
		info, _ := os.Stat(path)
		if string(got) != step.data || info.Mode().Perm() != step.perm {
			t.Fatalf("after WriteIfChanged(%q, %v): %q, %v", step.data, step.perm, got, info.Mode().Perm())
		}
	}
}
