package pause

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"runtime"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/cri/imagearchive"
)

// TestImage checks Image against what this checkout holds: without a
// generated bin/pause the test binary embeds only the placeholder and Image
// must say so; with it, Image must pack exactly that program.
func TestImage(t *testing.T) {
	const ref = "registry.k8s.io/pause:3.10"
	program, err := os.ReadFile(programPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Logf("%s not generated: checking that Image reports ErrNotEmbedded", programPath)
		if _, err := Image(ref); !errors.Is(err, ErrNotEmbedded) {
			t.Fatalf("Image(%q) error = %v, want ErrNotEmbedded", ref, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := Image(ref)
	if err != nil {
		t.Fatalf("Image(%q): %v", ref, err)
	}
	checkArchive(t, got, ref, program)
	again, err := Image(ref)
	if err != nil {
		t.Fatalf("Image(%q) again: %v", ref, err)
	}
	if !bytes.Equal(got, again) {
		t.Errorf("Image(%q) is not deterministic", ref)
	}
}

func TestImageFrom(t *testing.T) {
	placeholder := &fstest.MapFile{Data: []byte("# generated files\n")}
	for _, tc := range []struct {
		name    string
		fsys    fstest.MapFS
		ref     string
		wantErr func(error) bool
	}{
		{
			name:    "placeholder only",
			fsys:    fstest.MapFS{"bin/README.md": placeholder},
			ref:     "berth.local/pause:3.10",
			wantErr: func(err error) bool { return errors.Is(err, ErrNotEmbedded) },
		},
		{
			name:    "not an executable",
			fsys:    fstest.MapFS{"bin/README.md": placeholder, programPath: {Data: []byte("#!/bin/sh\n")}},
			ref:     "berth.local/pause:3.10",
			wantErr: func(err error) bool { return err != nil && !errors.Is(err, ErrNotEmbedded) },
		},
		{
			name:    "empty program",
			fsys:    fstest.MapFS{"bin/README.md": placeholder, programPath: {}},
			ref:     "berth.local/pause:3.10",
			wantErr: func(err error) bool { return err != nil && !errors.Is(err, ErrNotEmbedded) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := image(tc.fsys, tc.ref)
			if !tc.wantErr(err) {
				t.Fatalf("image(%q) = %d bytes, error %v: unexpected error", tc.ref, len(got), err)
			}
		})
	}
}

// TestImageFromBuilt packs the generated program under a valid and an
// invalid reference; it needs bin/pause.
func TestImageFromBuilt(t *testing.T) {
	program, err := os.ReadFile(programPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s not generated (run `go generate ./cri/pause` or `make build`)", programPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{programPath: {Data: program}}
	got, err := image(fsys, "berth.local/pause:3.10")
	if err != nil {
		t.Fatal(err)
	}
	checkArchive(t, got, "berth.local/pause:3.10", program)

	var invalid *imagearchive.ValidationError
	if _, err := image(fsys, "registry.k8s.io/pause@sha256:0000"); !errors.As(err, &invalid) {
		t.Errorf("image with a digest reference: error = %v, want an *imagearchive.ValidationError", err)
	}
}

func TestCheckProgram(t *testing.T) {
	program, err := os.ReadFile(programPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s not generated (run `go generate ./cri/pause` or `make build`)", programPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := checkProgram(program, runtime.GOARCH); err != nil {
		t.Errorf("checkProgram(generated program, %s): %v", runtime.GOARCH, err)
	}
	other := "arm64"
	if runtime.GOARCH == other {
		other = "amd64"
	}
	if err := checkProgram(program, other); err == nil {
		t.Errorf("checkProgram(program built for %s, %s) = nil, want an architecture mismatch", runtime.GOARCH, other)
	}
}

// archiveImage is what a docker-archive says about its only image.
type archiveImage struct {
	RepoTags   []string
	Entrypoint []string
	User       string
	Arch       string
	Layer      map[string]layerFile
}

// layerFile is one entry of the image's layer, its content by digest (go-cmp
// walks byte slices element by element, which is slow for a program).
type layerFile struct {
	Mode   int64
	SHA256 string
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func checkArchive(t *testing.T, archive []byte, ref string, program []byte) {
	t.Helper()
	want := archiveImage{
		RepoTags:   []string{ref},
		Entrypoint: []string{"/pause"},
		User:       "65535:65535",
		Arch:       runtime.GOARCH,
		Layer:      map[string]layerFile{"pause": {Mode: 0o755, SHA256: sha256Hex(program)}},
	}
	if diff := cmp.Diff(want, readArchive(t, archive)); diff != "" {
		t.Errorf("archive of %s (-want +got):\n%s", ref, diff)
	}
}

func readArchive(t *testing.T, archive []byte) archiveImage {
	t.Helper()
	outer := readTar(t, archive)
	file := func(name string) []byte {
		data, ok := outer[name]
		if !ok {
			t.Fatalf("archive has no %s", name)
		}
		return data
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(file("manifest.json"), &manifest); err != nil || len(manifest) != 1 || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest.json = %s (error %v), want one image with one layer", file("manifest.json"), err)
	}
	var config struct {
		Architecture string
		Config       struct {
			Entrypoint []string
			User       string
		}
	}
	if err := json.Unmarshal(file(manifest[0].Config), &config); err != nil {
		t.Fatalf("config %s: %v", manifest[0].Config, err)
	}
	return archiveImage{
		RepoTags:   manifest[0].RepoTags,
		Entrypoint: config.Config.Entrypoint,
		User:       config.Config.User,
		Arch:       config.Architecture,
		Layer:      layerFiles(t, file(manifest[0].Layers[0])),
	}
}

// layerFiles returns the regular files of a layer tar.
func layerFiles(t *testing.T, layer []byte) map[string]layerFile {
	t.Helper()
	files := make(map[string]layerFile)
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("read layer: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		files[hdr.Name] = layerFile{Mode: hdr.Mode, SHA256: sha256Hex(content)}
	}
}

// readTar returns the regular files of a tar by name.
func readTar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		files[hdr.Name] = content
	}
}
