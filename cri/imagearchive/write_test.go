package imagearchive_test

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
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/cri/imagearchive"
)

// entry is a tar entry as the tests compare it.
type entry struct {
	Name     string
	Type     byte
	Mode     int64
	Linkname string
	Data     string
}

// readTar returns the entries of a tar stream in order, checking the
// properties every entry berth writes must have.
func readTar(t *testing.T, data []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		if !hdr.ModTime.Equal(time.Unix(0, 0)) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("entry %s: mtime %v uid %d gid %d, want epoch and root", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		out = append(out, entry{Name: hdr.Name, Type: hdr.Typeflag, Mode: hdr.Mode, Linkname: hdr.Linkname, Data: string(body)})
	}
}

// manifestEntry is an element of manifest.json as docker load reads it.
type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func sampleImage() imagearchive.Image {
	return imagearchive.Image{
		Ref:          "berth.local/echo:v1",
		Entrypoint:   []string{"/echo"},
		Cmd:          []string{"serve"},
		Env:          []string{"PATH=/bin"},
		WorkingDir:   "/",
		User:         "65534:65534",
		ExposedPorts: []string{"9001/udp", "8080/tcp"},
		Files: []imagearchive.File{
			{Path: "/echo", Mode: 0o755, Data: []byte("#!binary")},
			{Path: "/usr/local/bin/sh", Mode: fs.ModeSymlink | 0o777, Linkname: "/echo"},
			{Path: "/etc/motd", Mode: 0o644, Data: []byte("hello\n")},
			{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "/usr/bin/su", Mode: fs.ModeSetuid | 0o755, Data: []byte("su")},
		},
	}
}

func TestWrite(t *testing.T) {
	var buf bytes.Buffer
	if err := imagearchive.Write(&buf, sampleImage()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	outer := readTar(t, buf.Bytes())
	if len(outer) != 4 {
		t.Fatalf("archive has %d entries, want 4: %+v", len(outer), outer)
	}
	layer, config, manifest := outer[1].Data, outer[2].Data, outer[3]
	layerHex := sha256Hex(layer)
	wantOuter := []entry{
		{Name: layerHex + "/", Type: tar.TypeDir, Mode: 0o755},
		{Name: layerHex + "/layer.tar", Type: tar.TypeReg, Mode: 0o644, Data: layer},
		{Name: sha256Hex(config) + ".json", Type: tar.TypeReg, Mode: 0o644, Data: config},
		{Name: "manifest.json", Type: tar.TypeReg, Mode: 0o644, Data: manifest.Data},
	}
	if diff := cmp.Diff(wantOuter, outer); diff != "" {
		t.Errorf("archive entries (-want +got):\n%s", diff)
	}

	var m []manifestEntry
	if err := json.Unmarshal([]byte(manifest.Data), &m); err != nil {
		t.Fatalf("decode manifest: %v", err)
	}
	wantManifest := []manifestEntry{{
		Config:   sha256Hex(config) + ".json",
		RepoTags: []string{"berth.local/echo:v1"},
		Layers:   []string{layerHex + "/layer.tar"},
	}}
	if diff := cmp.Diff(wantManifest, m); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}

	var gotConfig map[string]any
	if err := json.Unmarshal([]byte(config), &gotConfig); err != nil {
		t.Fatalf("decode config: %v", err)
	}
	wantConfig := map[string]any{
		"created":      "1970-01-01T00:00:00Z",
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"User":         "65534:65534",
			"ExposedPorts": map[string]any{"8080/tcp": map[string]any{}, "9001/udp": map[string]any{}},
			"Env":          []any{"PATH=/bin"},
			"Entrypoint":   []any{"/echo"},
			"Cmd":          []any{"serve"},
			"WorkingDir":   "/",
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []any{"sha256:" + layerHex}},
		"history": []any{map[string]any{
			"created": "1970-01-01T00:00:00Z", "created_by": "berth imagearchive",
		}},
	}
	if diff := cmp.Diff(wantConfig, gotConfig); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}

	wantLayer := []entry{
		{Name: "echo", Type: tar.TypeReg, Mode: 0o755, Data: "#!binary"},
		{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "etc/motd", Type: tar.TypeReg, Mode: 0o644, Data: "hello\n"},
		{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		{Name: "usr/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/bin/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/bin/su", Type: tar.TypeReg, Mode: 0o4755, Data: "su"},
		{Name: "usr/local/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/local/bin/", Type: tar.TypeDir, Mode: 0o755},
		{Name: "usr/local/bin/sh", Type: tar.TypeSymlink, Mode: 0o777, Linkname: "/echo"},
	}
	if diff := cmp.Diff(wantLayer, readTar(t, []byte(layer))); diff != "" {
		t.Errorf("layer (-want +got):\n%s", diff)
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	img := sampleImage()
	reordered := sampleImage()
	for i, j := 0, len(reordered.Files)-1; i < j; i, j = i+1, j-1 {
		reordered.Files[i], reordered.Files[j] = reordered.Files[j], reordered.Files[i]
	}
	reordered.ExposedPorts = []string{"8080/tcp", "9001/udp"}

	var outputs [][]byte
	for _, im := range []imagearchive.Image{img, img, reordered} {
		var buf bytes.Buffer
		if err := imagearchive.Write(&buf, im); err != nil {
			t.Fatalf("Write: %v", err)
		}
		outputs = append(outputs, buf.Bytes())
	}
	for i := 1; i < len(outputs); i++ {
		if !bytes.Equal(outputs[0], outputs[i]) {
			t.Errorf("write %d differs from write 0", i)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "echo.tar")
	if err := os.WriteFile(name, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := imagearchive.WriteFile(name, sampleImage()); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	var want bytes.Buffer
	if err := imagearchive.Write(&want, sampleImage()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("WriteFile content differs from Write")
	}

	bad := sampleImage()
	bad.Ref = ""
	if err := imagearchive.WriteFile(filepath.Join(dir, "bad.tar"), bad); err == nil {
		t.Errorf("WriteFile of an invalid image succeeded")
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range names {
		left = append(left, e.Name())
	}
	if diff := cmp.Diff([]string{"echo.tar"}, left); diff != "" {
		t.Errorf("files left in dir (-want +got):\n%s", diff)
	}
}
