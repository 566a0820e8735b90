package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// ErrNotInArchive is wrapped by ReadFile when the archive does not hold
// the image or the image not the file.
var ErrNotInArchive = errors.New("not in the archive")

// ReadFile returns the regular file at name (a path in the image, such as
// "/echo") of image ref in the docker-archive tarball at archive. It lets
// the bed run a program of an image outside any container, on a node
// host: the echo client is then the very program the pods serve with.
func ReadFile(archive, ref, name string) ([]byte, error) {
	a, err := ReadArchive(archive)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(a.RepoTags, ref) {
		return nil, fmt.Errorf("%s: no image %s: %w", archive, ref, ErrNotInArchive)
	}
	e, ok := a.Layer[strings.TrimPrefix(name, "/")]
	switch {
	case !ok:
		return nil, fmt.Errorf("%s: no file %s in image %s: %w", archive, name, ref, ErrNotInArchive)
	case e.Header.Typeflag != tar.TypeReg:
		return nil, fmt.Errorf("%s: %s in image %s is not a regular file", archive, name, ref)
	}
	return e.Data, nil
}

// Archive is a single-layer docker-archive tar read back, for checking
// what an image holds without importing it into a runtime.
type Archive struct {
	// RepoTags are the references manifest.json tags.
	RepoTags []string
	// Entrypoint, Cmd, Env and User are the image config's process
	// defaults.
	Entrypoint, Cmd, Env []string
	User                 string
	// Layer holds the layer's entries by tar name ("bin/sh", "tmp/").
	Layer map[string]LayerEntry
}

// LayerEntry is one entry of an image layer.
type LayerEntry struct {
	// Header is the entry's tar header.
	Header *tar.Header
	// Data is a regular file's content.
	Data []byte
}

// Describe summarises e for comparisons in tests: "dir", "-> target" for a
// symlink, "file MODE elf" for an executable (setuid shows as "u" in MODE)
// and the content of any other file.
func (e LayerEntry) Describe() string {
	switch {
	case e.Header.Typeflag == tar.TypeSymlink:
		return "-> " + e.Header.Linkname
	case e.Header.Typeflag == tar.TypeDir:
		return "dir"
	case bytes.HasPrefix(e.Data, []byte("\x7fELF")):
		return "file " + e.Header.FileInfo().Mode().String() + " elf"
	default:
		return string(e.Data)
	}
}

// Mode is the entry's file mode, with fs.ModeSetuid and friends.
func (e LayerEntry) Mode() fs.FileMode { return e.Header.FileInfo().Mode() }

// ReadArchive reads the docker-archive tar at path, which must hold one
// image of one layer, as imagearchive writes them.
func ReadArchive(path string) (*Archive, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	outer, err := readEntries(data)
	if err != nil {
		return nil, fmt.Errorf("read archive %s: %w", path, err)
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(outer["manifest.json"].Data, &manifest); err != nil {
		return nil, fmt.Errorf("read archive %s: manifest.json: %w", path, err)
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != 1 {
		return nil, fmt.Errorf("read archive %s: want one image of one layer, manifest.json is %s", path, outer["manifest.json"].Data)
	}
	var config struct {
		Config struct {
			Entrypoint, Cmd, Env []string
			User                 string
		}
	}
	if err := json.Unmarshal(outer[manifest[0].Config].Data, &config); err != nil {
		return nil, fmt.Errorf("read archive %s: config: %w", path, err)
	}
	layer, err := readEntries(outer[manifest[0].Layers[0]].Data)
	if err != nil {
		return nil, fmt.Errorf("read archive %s: layer: %w", path, err)
	}
	return &Archive{
		RepoTags:   manifest[0].RepoTags,
		Entrypoint: config.Config.Entrypoint,
		Cmd:        config.Config.Cmd,
		Env:        config.Config.Env,
		User:       config.Config.User,
		Layer:      layer,
	}, nil
}

func readEntries(data []byte) (map[string]LayerEntry, error) {
	out := map[string]LayerEntry{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out[hdr.Name] = LayerEntry{Header: hdr, Data: body}
	}
}
