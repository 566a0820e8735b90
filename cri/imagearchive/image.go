package imagearchive

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// File is one entry of an image's filesystem. Every file is owned by root
// (uid 0, gid 0); parent directories that are not listed are created with mode
// 0755.
type File struct {
	// Path is the absolute, clean, slash-separated path inside the image,
	// for example "/bin/sh". "/" itself is not allowed.
	Path string
	// Mode holds the type and permission bits. The type is a regular file
	// (no type bit), fs.ModeDir or fs.ModeSymlink; fs.ModeSetuid,
	// fs.ModeSetgid and fs.ModeSticky are kept, the permissions of a symlink
	// are always written as 0777. A zero permission is written as is, so a
	// program must be given 0755 explicitly.
	Mode fs.FileMode
	// Data is the content of a regular file; empty for directories and
	// symlinks.
	Data []byte
	// Linkname is the target of a symlink (Mode&fs.ModeSymlink != 0), for
	// example "busybox" or "/bin/busybox"; empty otherwise.
	Linkname string
}

// Image describes a single-layer image: its reference, the process defaults
// recorded in its config, and its files.
type Image struct {
	// Ref is the reference the image is imported as, with an explicit tag,
	// for example "berth.local/echo:v1". Digests are not allowed.
	Ref string
	// Entrypoint is the image's ENTRYPOINT; may be empty.
	Entrypoint []string
	// Cmd is the image's CMD; may be empty.
	Cmd []string
	// Env holds "KEY=value" entries, for example "PATH=/bin".
	Env []string
	// WorkingDir is an absolute directory for the process; empty means "/".
	WorkingDir string
	// User is the user the process runs as ("uid", "uid:gid" or a name);
	// empty means root.
	User string
	// ExposedPorts lists ports as "port/protocol", for example "8080/tcp";
	// the protocol is tcp, udp or sctp.
	ExposedPorts []string
	// Files is the content of the image's only layer, in any order.
	Files []File
}

// ValidationError reports why an Image cannot be written.
type ValidationError struct {
	// Field names the offending field, for example "Ref" or "Files[3].Path".
	Field string
	// Value is the offending value.
	Value string
	// Reason says what is wrong with Value.
	Reason string
}

// Error implements error.
func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid image: %s %q: %s", e.Field, e.Value, e.Reason)
}

func invalid(field, value, reason string) error {
	return &ValidationError{Field: field, Value: value, Reason: reason}
}

// Validate reports the first problem that would make img unwritable or
// ambiguous, as a *ValidationError; nil means Write will accept img.
func (img Image) Validate() error {
	if err := validateRef(img.Ref); err != nil {
		return invalid("Ref", img.Ref, err.Error())
	}
	for i, kv := range img.Env {
		key, _, ok := strings.Cut(kv, "=")
		if !ok || key == "" || strings.ContainsRune(kv, 0) {
			return invalid(fmt.Sprintf("Env[%d]", i), kv, `want "KEY=value"`)
		}
	}
	if img.WorkingDir != "" && !path.IsAbs(img.WorkingDir) {
		return invalid("WorkingDir", img.WorkingDir, "must be an absolute path")
	}
	for i, p := range img.ExposedPorts {
		if err := validatePort(p); err != nil {
			return invalid(fmt.Sprintf("ExposedPorts[%d]", i), p, err.Error())
		}
	}
	return validateFiles(img.Files)
}

func validatePort(p string) error {
	num, proto, ok := strings.Cut(p, "/")
	if !ok {
		return errors.New(`want "port/protocol"`)
	}
	if n, err := strconv.Atoi(num); err != nil || n < 1 || n > 65535 {
		return errors.New("port must be a number in 1-65535")
	}
	switch proto {
	case "tcp", "udp", "sctp":
		return nil
	default:
		return errors.New("protocol must be tcp, udp or sctp")
	}
}

// allowedModeBits are the FileMode bits a File may carry.
const allowedModeBits = fs.ModeDir | fs.ModeSymlink | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

func validateFiles(files []File) error {
	types := make(map[string]fs.FileMode, len(files))
	for i, f := range files {
		field := fmt.Sprintf("Files[%d]", i)
		if err := validatePath(f.Path); err != nil {
			return invalid(field+".Path", f.Path, err.Error())
		}
		if _, dup := types[f.Path]; dup {
			return invalid(field+".Path", f.Path, "duplicate path")
		}
		if err := validateEntry(f); err != nil {
			return invalid(field, f.Path, err.Error())
		}
		types[f.Path] = f.Mode.Type()
	}
	// A parent listed as a file or symlink would make the layer's meaning
	// depend on how an extractor resolves it.
	for i, f := range files {
		for p := path.Dir(f.Path); p != "/"; p = path.Dir(p) {
			if t, ok := types[p]; ok && t != fs.ModeDir {
				return invalid(fmt.Sprintf("Files[%d].Path", i), f.Path,
					fmt.Sprintf("parent %q is not a directory", p))
			}
		}
	}
	return nil
}

func validatePath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case !path.IsAbs(p):
		return errors.New("must be an absolute path")
	case p == "/":
		return errors.New(`"/" cannot be an entry`)
	case path.Clean(p) != p:
		return fmt.Errorf("must be clean (no trailing slash, '.', '..' or '//'), want %q", path.Clean(p))
	case strings.ContainsRune(p, 0):
		return errors.New("contains a NUL byte")
	}
	return nil
}

func validateEntry(f File) error {
	if extra := f.Mode &^ allowedModeBits; extra != 0 {
		return fmt.Errorf("unsupported mode bits %v", extra)
	}
	switch f.Mode.Type() {
	case 0:
		if f.Linkname != "" {
			return errors.New("a regular file has a Linkname")
		}
	case fs.ModeDir:
		if len(f.Data) != 0 || f.Linkname != "" {
			return errors.New("a directory has no Data or Linkname")
		}
	case fs.ModeSymlink:
		if f.Linkname == "" || strings.ContainsRune(f.Linkname, 0) {
			return errors.New("a symlink needs a Linkname without NUL bytes")
		}
		if len(f.Data) != 0 {
			return errors.New("a symlink has no Data")
		}
	default:
		return errors.New("only regular files, directories and symlinks are supported")
	}
	return nil
}
