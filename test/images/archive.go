package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	entries, err := readEntries(archive)
	if err != nil {
		return nil, err
	}
	var manifest []struct {
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil {
		return nil, fmt.Errorf("%s: manifest.json: %w", archive, err)
	}
	want := strings.TrimPrefix(name, "/")
	for _, m := range manifest {
		if !slices.Contains(m.RepoTags, ref) {
			continue
		}
		// The last layer that has the file wins, as in the container.
		for _, layer := range slices.Backward(m.Layers) {
			data, err := readLayerFile(entries[layer], want)
			if errors.Is(err, ErrNotInArchive) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: layer %s: %w", archive, layer, err)
			}
			return data, nil
		}
		return nil, fmt.Errorf("%s: no file %s in image %s: %w", archive, name, ref, ErrNotInArchive)
	}
	return nil, fmt.Errorf("%s: no image %s: %w", archive, ref, ErrNotInArchive)
}

// readEntries returns the regular files of the tarball at path by name.
func readEntries(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read image archive: %w", err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read image archive %s: %w", path, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read image archive %s: %s: %w", path, hdr.Name, err)
		}
		entries[hdr.Name] = data
	}
}

// readLayerFile returns the regular file name (relative, as a layer tar
// names it) of an uncompressed layer tar.
func readLayerFile(layer []byte, name string) ([]byte, error) {
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, ErrNotInArchive
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(hdr.Name, "./") != name {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%s is not a regular file", name)
		}
		return io.ReadAll(tr)
	}
}
