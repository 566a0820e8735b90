package imagearchive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/berthnode/berth/kubelet/atomicfile"
)

// Names inside the archive, as docker save lays them out.
const (
	manifestName  = "manifest.json"
	layerFileName = "layer.tar"
)

// defaultDirMode is the mode of parent directories that Files do not list.
const defaultDirMode = fs.ModeDir | 0o755

// epoch is the time stamp of every entry and of the image config, fixed so
// that the output does not depend on when it was written.
func epoch() time.Time { return time.Unix(0, 0).UTC() }

// manifestEntry is one element of manifest.json.
type manifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// imageConfig is the subset of the OCI / docker image config that berth sets.
type imageConfig struct {
	Created      string          `json:"created"`
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Config       containerConfig `json:"config"`
	RootFS       rootFS          `json:"rootfs"`
	History      []history       `json:"history,omitempty"`
}

type containerConfig struct {
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type history struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

// Write writes img to w as a docker-archive tarball. The same img always
// produces byte-identical output, whatever the order of img.Files. An
// invalid img yields the *ValidationError of Image.Validate and no output.
func Write(w io.Writer, img Image) error {
	if err := img.Validate(); err != nil {
		return err
	}
	layer, err := buildLayer(img.Files)
	if err != nil {
		return fmt.Errorf("build layer of %s: %w", img.Ref, err)
	}
	layerSum := sha256.Sum256(layer)
	layerDir := hex.EncodeToString(layerSum[:])
	config, err := json.Marshal(newConfig(img, "sha256:"+layerDir))
	if err != nil {
		return fmt.Errorf("encode config of %s: %w", img.Ref, err)
	}
	configSum := sha256.Sum256(config)
	configName := hex.EncodeToString(configSum[:]) + ".json"
	manifest, err := json.Marshal([]manifestEntry{{
		Config:   configName,
		RepoTags: []string{img.Ref},
		Layers:   []string{layerDir + "/" + layerFileName},
	}})
	if err != nil {
		return fmt.Errorf("encode manifest of %s: %w", img.Ref, err)
	}

	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(dirHeader(layerDir+"/", 0o755)); err != nil {
		return fmt.Errorf("write archive of %s: %w", img.Ref, err)
	}
	for _, e := range []struct {
		name string
		data []byte
	}{
		{layerDir + "/" + layerFileName, layer},
		{configName, config},
		{manifestName, manifest},
	} {
		if err := writeRegular(tw, e.name, 0o644, e.data); err != nil {
			return fmt.Errorf("write archive of %s: %w", img.Ref, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write archive of %s: %w", img.Ref, err)
	}
	return nil
}

// WriteFile writes img to the file at name, atomically: readers see either
// the previous file or the complete new one, never a partial archive. The
// file's mode is 0644.
func WriteFile(name string, img Image) error {
	if err := img.Validate(); err != nil {
		return err
	}
	return atomicfile.WriteFunc(name, 0o644, func(f *os.File) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if err := Write(bw, img); err != nil {
			return err
		}
		return bw.Flush()
	})
}

func newConfig(img Image, diffID string) imageConfig {
	var ports map[string]struct{}
	if len(img.ExposedPorts) > 0 {
		ports = make(map[string]struct{}, len(img.ExposedPorts))
		for _, p := range img.ExposedPorts {
			ports[p] = struct{}{}
		}
	}
	created := epoch().Format(time.RFC3339)
	return imageConfig{
		Created:      created,
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Config: containerConfig{
			User:         img.User,
			ExposedPorts: ports,
			Env:          img.Env,
			Entrypoint:   img.Entrypoint,
			Cmd:          img.Cmd,
			WorkingDir:   img.WorkingDir,
		},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{diffID}},
		History: []history{{Created: created, CreatedBy: "berth imagearchive"}},
	}
}

// buildLayer returns the uncompressed layer tar of files, with every missing
// parent directory added and entries sorted by path, so that parents come
// before their children.
func buildLayer(files []File) ([]byte, error) {
	entries := make(map[string]File, len(files))
	for _, f := range files {
		entries[f.Path] = f
		for p := path.Dir(f.Path); p != "/"; p = path.Dir(p) {
			if _, ok := entries[p]; !ok {
				entries[p] = File{Path: p, Mode: defaultDirMode}
			}
		}
	}
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		if err := writeEntry(tw, entries[p]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeEntry(tw *tar.Writer, f File) error {
	name := strings.TrimPrefix(f.Path, "/")
	mode := tarMode(f.Mode)
	switch f.Mode.Type() {
	case fs.ModeDir:
		return tw.WriteHeader(dirHeader(name+"/", mode))
	case fs.ModeSymlink:
		return tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeSymlink,
			Name:     name,
			Linkname: f.Linkname,
			Mode:     0o777,
			ModTime:  epoch(),
		})
	case 0:
		return writeRegular(tw, name, mode, f.Data)
	default:
		// Validate rejects other types; reaching here is a bug.
		return errors.New("unsupported file type " + f.Mode.Type().String())
	}
}

func dirHeader(name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: epoch()}
}

func writeRegular(tw *tar.Writer, name string, mode int64, data []byte) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     mode,
		Size:     int64(len(data)),
		ModTime:  epoch(),
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// tarMode converts Go's mode bits to the tar header's unix mode bits.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}
