package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
)

// setupHostPath checks the host path against the volume's type, creating it
// for the ...OrCreate types, and returns the path itself: a hostPath is
// bind-mounted as it is and never removed by Teardown.
func setupHostPath(src *v1.HostPathVolumeSource) (string, error) {
	path := src.Path
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("hostPath %q is not absolute", path)
	}
	typ := v1.HostPathUnset
	if src.Type != nil {
		typ = *src.Type
	}
	if err := checkHostPathType(path, typ); err != nil {
		return "", err
	}
	return path, nil
}

// checkHostPathType follows the kubelet: the check follows symlinks,
// DirectoryOrCreate makes missing directories with mode 0755 and
// FileOrCreate an empty file with mode 0644 (but not its parent).
func checkHostPathType(path string, typ v1.HostPathType) error {
	want := fs.FileMode(0)
	switch typ {
	case v1.HostPathUnset:
		return nil
	case v1.HostPathDirectoryOrCreate:
		if missing(path) {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return fmt.Errorf("hostPath type check failed: create directory %s: %w", path, err)
			}
		}
		want = fs.ModeDir
	case v1.HostPathDirectory:
		want = fs.ModeDir
	case v1.HostPathFileOrCreate:
		if missing(path) {
			f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err == nil {
				err = f.Close()
			}
			if err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("hostPath type check failed: create file %s: %w", path, err)
			}
		}
	case v1.HostPathFile:
	case v1.HostPathSocket:
		want = fs.ModeSocket
	case v1.HostPathCharDev:
		want = fs.ModeDevice | fs.ModeCharDevice
	case v1.HostPathBlockDev:
		want = fs.ModeDevice
	default:
		return fmt.Errorf("hostPath %s has unknown type %q", path, typ)
	}
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("hostPath type check failed: %s does not exist, want %s", path, typ)
	}
	if err != nil {
		return fmt.Errorf("hostPath type check failed: %w", err)
	}
	if got := info.Mode().Type(); got != want {
		return fmt.Errorf("hostPath type check failed: %s is %s, want %s", path, describeType(got), typ)
	}
	return nil
}

// missing reports whether nothing is at path; anything in the way is left
// for the type check to report.
func missing(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}

func describeType(t fs.FileMode) string {
	switch {
	case t == 0:
		return "a File"
	case t&fs.ModeDir != 0:
		return "a Directory"
	case t&fs.ModeSocket != 0:
		return "a Socket"
	case t&fs.ModeCharDevice != 0:
		return "a CharDevice"
	case t&fs.ModeDevice != 0:
		return "a BlockDevice"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	}
	return "of type " + t.String()
}
