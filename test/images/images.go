package images

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/cri/imagearchive"
	"github.com/berthnode/berth/kubelet/atomicfile"
)

// References of the images Build produces.
const (
	// PauseRef is the sandbox image; its tag matches the pause program's
	// version.
	PauseRef = "berth.local/pause:3.10"
	// BusyboxRef is Debian's busybox-static with a symlink per applet.
	BusyboxRef = "berth.local/busybox:1.35"
	// EchoRef is the echo program of test/images/echo.
	EchoRef = "berth.local/echo:v1"
)

const (
	// modulePath is this module's path, to recognise its go.mod.
	modulePath = "github.com/berthnode/berth"
	// busyboxPath is where Debian's busybox-static package installs busybox.
	busyboxPath = "/bin/busybox"
	// inputsSuffix names the file beside each tar that records what the tar
	// was built from.
	inputsSuffix = ".inputs-sha256"
)

// Built is an image archive that Build wrote or found up to date.
type Built struct {
	// Ref is the image reference the archive's manifest tags.
	Ref string
	// Path is the absolute path of the docker-archive tar.
	Path string
}

// Build compiles the pause and echo programs statically from this module's
// source, packs them and Debian's static /bin/busybox into images, and
// writes each as a docker-archive tar into outDir (created if missing). A
// tar whose inputs have not changed since it was written is left alone.
// The result lists the pause, busybox and echo images, in that order.
func Build(ctx context.Context, outDir string) ([]Built, error) {
	outDir, err := filepath.Abs(outDir)
	if err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}
	binDir, err := os.MkdirTemp(outDir, ".build-")
	if err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}
	defer os.RemoveAll(binDir)

	bins, err := GoBuild(ctx, root, binDir, "./cri/pause/cmd/pause", "./test/images/echo")
	if err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}
	busybox, err := ReadStatic(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("build images: %w (install Debian's busybox-static)", err)
	}
	applets, err := ListApplets(ctx, busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}

	var built []Built
	for _, img := range []struct {
		file  string
		image imagearchive.Image
	}{
		{"pause.tar", PauseImage(PauseRef, bins["pause"])},
		{"busybox.tar", busyboxImage(busybox, applets)},
		{"echo.tar", echoImage(bins["echo"])},
	} {
		path := filepath.Join(outDir, img.file)
		if err := WriteCached(ctx, path, img.image); err != nil {
			return nil, fmt.Errorf("build images: %w", err)
		}
		built = append(built, Built{Ref: img.image.Ref, Path: path})
	}
	return built, nil
}

// PauseImage is the sandbox image holding bin (berth's pause program) under
// ref: PauseRef for the test bed, the upstream tag for the e2e suite.
func PauseImage(ref string, bin []byte) imagearchive.Image {
	return imagearchive.Image{
		Ref:        ref,
		Entrypoint: []string{"/pause"},
		// As upstream's pause image: the sandbox needs no privilege.
		User:  "65535:65535",
		Files: []imagearchive.File{{Path: "/pause", Mode: 0o755, Data: bin}},
	}
}

func echoImage(bin []byte) imagearchive.Image {
	return imagearchive.Image{
		Ref:          EchoRef,
		Entrypoint:   []string{"/echo"},
		Cmd:          []string{"serve"},
		ExposedPorts: []string{"8080/tcp", "9000/tcp", "9001/udp"},
		Files:        []imagearchive.File{{Path: "/echo", Mode: 0o755, Data: bin}},
	}
}

// busyboxImage holds BusyboxFiles and the root and nobody accounts for id,
// ls and whoami.
func busyboxImage(bin []byte, applets []string) imagearchive.Image {
	files := append(BusyboxFiles(bin, applets),
		imagearchive.File{Path: "/etc/passwd", Mode: 0o644, Data: []byte(
			"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		imagearchive.File{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	)
	return imagearchive.Image{
		Ref:   BusyboxRef,
		Cmd:   []string{"sh"},
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Files: files,
	}
}

// BusyboxFiles are the files of a busybox-based image: /bin/busybox (bin),
// a /bin symlink per applet, and a /tmp for shell scripts.
func BusyboxFiles(bin []byte, applets []string) []imagearchive.File {
	files := []imagearchive.File{
		{Path: "/bin/busybox", Mode: 0o755, Data: bin},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
	for _, a := range applets {
		files = append(files, imagearchive.File{Path: "/bin/" + a, Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"})
	}
	return files
}

// RepoRoot returns the root of the berth repository (where its go.mod is),
// found by walking up from this source file
// or, in a binary built with -trimpath, from the working directory.
func RepoRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, start := range starts {
		for dir := start; ; dir = filepath.Dir(dir) {
			if isModuleRoot(dir) {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return "", fmt.Errorf("no go.mod of %s above this source file or the working directory", modulePath)
}

func isModuleRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(scanner.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == modulePath
		}
	}
	return false
}

// GoBuild compiles the main packages as static, stripped, reproducible
// binaries for this machine's architecture (the images' architecture) and
// returns their content by program name.
func GoBuild(ctx context.Context, root, binDir string, pkgs ...string) (map[string][]byte, error) {
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", binDir + "/"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	bins := make(map[string][]byte, len(pkgs))
	for _, pkg := range pkgs {
		name := filepath.Base(pkg)
		data, err := ReadStatic(filepath.Join(binDir, name))
		if err != nil {
			return nil, err
		}
		bins[name] = data
	}
	return bins, nil
}

// ReadStatic returns the content of the executable at path, which must be
// statically linked: the images hold no dynamic loader or libraries.
func ReadStatic(path string) ([]byte, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read executable: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked, want a static executable", path)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read executable: %w", err)
	}
	return data, nil
}

// ListApplets asks busybox which applets it has.
func ListApplets(ctx context.Context, busybox string) ([]string, error) {
	out, err := exec.CommandContext(ctx, busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	return parseApplets(string(out))
}

// parseApplets turns `busybox --list` output into file names, leaving out
// busybox itself.
func parseApplets(list string) ([]string, error) {
	seen := map[string]bool{"busybox": true}
	var applets []string
	for _, name := range strings.Fields(list) {
		if strings.Contains(name, "/") || name == "." || name == ".." {
			return nil, fmt.Errorf("busybox lists an applet named %q, want a file name", name)
		}
		if !seen[name] {
			seen[name] = true
			applets = append(applets, name)
		}
	}
	if len(applets) == 0 {
		return nil, errors.New("busybox lists no applets")
	}
	return applets, nil
}

// WriteCached writes img to path unless the tar there was built from the
// same inputs. The file beside it records the sha256 of the archive those
// inputs produce, so a change to the binaries, to the image's definition or
// to the archive format all cause a rewrite.
func WriteCached(ctx context.Context, path string, img imagearchive.Image) error {
	logger := klog.FromContext(ctx)
	h := sha256.New()
	if err := imagearchive.Write(h, img); err != nil {
		return err
	}
	digest := hex.EncodeToString(h.Sum(nil))
	inputs := path + inputsSuffix
	recorded, err := os.ReadFile(inputs)
	if err == nil && strings.TrimSpace(string(recorded)) == digest {
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			logger.V(2).Info("Image archive is up to date", "ref", img.Ref, "path", path)
			return nil
		}
	}
	// Forget the old inputs first: a crash below must not leave a record
	// that matches a tar it does not describe.
	if err := os.Remove(inputs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("invalidate %s: %w", inputs, err)
	}
	if err := imagearchive.WriteFile(path, img); err != nil {
		return err
	}
	if err := atomicfile.Write(inputs, []byte(digest+"\n"), 0o644); err != nil {
		return err
	}
	logger.V(1).Info("Wrote image archive", "ref", img.Ref, "path", path)
	return nil
}
