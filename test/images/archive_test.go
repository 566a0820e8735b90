package images

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthnode/berth/cri/imagearchive"
)

func TestReadFile(t *testing.T) {
	archive := filepath.Join(t.TempDir(), "tool.tar")
	if err := imagearchive.WriteFile(archive, imagearchive.Image{
		Ref:        "berth.local/tool:v1",
		Entrypoint: []string{"/bin/tool"},
		Files: []imagearchive.File{
			{Path: "/bin/tool", Mode: 0o755, Data: []byte("the program")},
			{Path: "/etc/tool.conf", Mode: 0o644, Data: []byte("setting")},
			{Path: "/bin/link", Mode: os.ModeSymlink, Linkname: "tool"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ref, file string
		want            string
		wantNotIn       bool
		wantErr         bool
	}{
		{name: "program", ref: "berth.local/tool:v1", file: "/bin/tool", want: "the program"},
		{name: "relative name", ref: "berth.local/tool:v1", file: "etc/tool.conf", want: "setting"},
		{name: "other image", ref: "berth.local/echo:v1", file: "/bin/tool", wantNotIn: true},
		{name: "no such file", ref: "berth.local/tool:v1", file: "/bin/other", wantNotIn: true},
		{name: "a directory", ref: "berth.local/tool:v1", file: "/bin", wantNotIn: true},
		{name: "a symlink", ref: "berth.local/tool:v1", file: "/bin/link", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFile(archive, tc.ref, tc.file)
			switch {
			case tc.wantNotIn && !errors.Is(err, ErrNotInArchive):
				t.Fatalf("ReadFile(%s, %s) = %q, %v; want ErrNotInArchive", tc.ref, tc.file, got, err)
			case tc.wantErr && (err == nil || errors.Is(err, ErrNotInArchive)):
				t.Fatalf("ReadFile(%s, %s) = %q, %v; want an error other than ErrNotInArchive", tc.ref, tc.file, got, err)
			case !tc.wantNotIn && !tc.wantErr && (err != nil || string(got) != tc.want):
				t.Fatalf("ReadFile(%s, %s) = %q, %v; want %q", tc.ref, tc.file, got, err, tc.want)
			}
		})
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.tar"), "berth.local/tool:v1", "/bin/tool"); err == nil || errors.Is(err, ErrNotInArchive) {
		t.Errorf("ReadFile of a missing archive: %v, want an error other than ErrNotInArchive", err)
	}
}
