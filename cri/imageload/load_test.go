package imageload

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOCIName(t *testing.T) {
	want := map[string]string{
		"registry.example/app:v1": "registry.example/app:v1",
		"busybox:1.36":            "docker.io/library/busybox:1.36",
		"localhost:5000/app":      "localhost:5000/app:latest",
		"v1":                      "",
		"latest":                  "",
		"":                        "",
		"Bad/Name:v1":             "",
	}
	got := make(map[string]string, len(want))
	for refName := range want {
		got[refName] = ociName(refName)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ociName (-want +got):\n%s", diff)
	}
}

// TestLoadErrors checks that what goes wrong before containerd is reached
// is reported at once, naming what is missing.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	notSocket := filepath.Join(dir, "file")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.sock")
	for _, tc := range []struct {
		name      string
		cfg       Config
		wantInErr string
		wantIs    error
	}{
		{name: "invalid config", cfg: Config{Address: "containerd.sock"}, wantInErr: `"containerd.sock"`},
		{name: "no socket", cfg: Config{Address: "unix://" + missing}, wantInErr: missing, wantIs: fs.ErrNotExist},
		{name: "not a socket", cfg: Config{Address: notSocket}, wantInErr: notSocket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(context.Background(), tc.cfg, strings.NewReader(""))
			if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Fatalf("Load() error = %v, want one naming %s", err, tc.wantInErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("Load() error = %v, want errors.Is %v", err, tc.wantIs)
			}
			err = EnsureSandboxImage(context.Background(), tc.cfg, "berth.local/pause:3.10")
			if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("EnsureSandboxImage() error = %v, want one naming %s", err, tc.wantInErr)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.tar")
	_, err := LoadFile(context.Background(), Config{Address: DefaultAddress}, path)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadFile(%s) error = %v, want a not-exist error naming the file", path, err)
	}
}

func TestEnsureSandboxImageBadRef(t *testing.T) {
	// A listening socket that is never served: the reference is checked
	// before anything is asked of containerd.
	socket := filepath.Join(t.TempDir(), "containerd.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, ref := range []string{"", "Bad Ref", "registry.example/pause:"} {
		err := EnsureSandboxImage(context.Background(), Config{Address: socket}, ref)
		if err == nil {
			t.Errorf("EnsureSandboxImage(%q) = nil, want an invalid reference error", ref)
		}
	}
}
