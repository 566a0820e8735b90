package pause

import (
	"bytes"
	"debug/elf"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"runtime"

	"github.com/berthnode/berth/cri/imagearchive"
)

// The program is built for the architecture go generate targets (GOARCH is
// inherited), always for Linux, static and reproducible: the same source and
// toolchain yield the same bytes, hence the same image ID on every node.
//go:generate env CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false -ldflags "-s -w" -o bin/pause ./cmd/pause

// bin always holds README.md, so the pattern matches on a fresh clone; the
// generated bin/pause is there only after go generate.
//
//go:embed bin
var binFS embed.FS

// programPath is where go generate writes the program, inside binFS.
const programPath = "bin/pause"

// User is the uid:gid the sandbox process runs as, as in upstream's pause
// image: holding namespaces open and reaping children needs no privilege.
const User = "65535:65535"

// ErrNotEmbedded is returned by Image when this binary was built without the
// pause program.
var ErrNotEmbedded = errors.New("berth's pause program is not embedded in this binary: build berth with `make build` (or run `go generate ./cri/pause` before `go build`)")

// Image returns berth's pause image as a docker-archive tarball tagged ref
// (for example the sandbox image the runtime is configured with), or
// ErrNotEmbedded if this binary was built without the program. ref must name
// a tag, not a digest. The same ref always yields the same bytes.
func Image(ref string) ([]byte, error) {
	return image(binFS, ref)
}

// NewImage describes the pause image tagged ref that holds program, the
// static pause executable.
func NewImage(ref string, program []byte) imagearchive.Image {
	return imagearchive.Image{
		Ref:        ref,
		Entrypoint: []string{"/pause"},
		User:       User,
		Files:      []imagearchive.File{{Path: "/pause", Mode: 0o755, Data: program}},
	}
}

// image is Image over the file system the program is read from.
func image(fsys fs.FS, ref string) ([]byte, error) {
	program, err := fs.ReadFile(fsys, programPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotEmbedded
	}
	if err != nil {
		return nil, fmt.Errorf("read embedded pause program: %w", err)
	}
	if err := checkProgram(program, runtime.GOARCH); err != nil {
		return nil, fmt.Errorf("embedded pause program: %w; rebuild berth with `make build`", err)
	}
	var buf bytes.Buffer
	if err := imagearchive.Write(&buf, NewImage(ref, program)); err != nil {
		return nil, fmt.Errorf("pack pause image %s: %w", ref, err)
	}
	return buf.Bytes(), nil
}

// elfMachine returns the ELF machine of goarch's executables; false for an
// architecture that is not checked.
func elfMachine(goarch string) (elf.Machine, bool) {
	switch goarch {
	case "386":
		return elf.EM_386, true
	case "amd64":
		return elf.EM_X86_64, true
	case "arm":
		return elf.EM_ARM, true
	case "arm64":
		return elf.EM_AARCH64, true
	case "loong64":
		return elf.EM_LOONGARCH, true
	case "ppc64le":
		return elf.EM_PPC64, true
	case "riscv64":
		return elf.EM_RISCV, true
	case "s390x":
		return elf.EM_S390, true
	}
	return 0, false
}

// checkProgram rejects a program that cannot run as the image's only file:
// the image config says goarch (berth's own architecture), so a program left
// over from a cross build, or one needing a dynamic loader, would only fail
// later, when a pod starts.
func checkProgram(program []byte, goarch string) error {
	f, err := elf.NewFile(bytes.NewReader(program))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if want, ok := elfMachine(goarch); ok && f.Machine != want {
		return fmt.Errorf("built for %v, want %v (GOARCH=%s)", f.Machine, want, goarch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked, want a static executable (CGO_ENABLED=0)")
		}
	}
	return nil
}
