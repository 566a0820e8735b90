package conformance

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"

	"github.com/berthnode/berth/cri/imagearchive"
)

// hostProgram is a dynamically linked Debian program an image carries.
type hostProgram struct {
	// Name is looked up on this machine's PATH (and the sbin folders).
	Name string
	// Dest is where the image holds it.
	Dest string
	// Package is the Debian package that provides it, for the error that
	// says what to install.
	Package string
}

// hostPrograms are the Debian programs the tests run in agnhost (upstream's
// Alpine has bind-tools, curl, netcat-openbsd, iproute2, bash) and in
// glibc-dns-testing (upstream's Debian has dnsutils): dig for the DNS probes,
// getent for the /etc/hosts probes, curl, nc, ip and ss for the network
// tests, and bash for the probe tests that start /bin/bash.
var hostPrograms = []hostProgram{
	{Name: "dig", Dest: "/usr/bin/dig", Package: "bind9-dnsutils"},
	{Name: "nslookup", Dest: "/usr/bin/nslookup", Package: "bind9-dnsutils"},
	{Name: "host", Dest: "/usr/bin/host", Package: "bind9-dnsutils"},
	{Name: "getent", Dest: "/usr/bin/getent", Package: "libc-bin"},
	{Name: "curl", Dest: "/usr/bin/curl", Package: "curl"},
	{Name: "nc.openbsd", Dest: "/usr/bin/nc", Package: "netcat-openbsd"},
	{Name: "ip", Dest: "/usr/bin/ip", Package: "iproute2"},
	{Name: "ss", Dest: "/usr/bin/ss", Package: "iproute2"},
	{Name: "bash", Dest: "/bin/bash", Package: "bash"},
}

// hostFiles returns the programs and, once each, every shared library they
// load (as ldd resolves them on this machine, the dynamic loader included),
// at the paths ldd names, so the programs run in an image without a
// package manager.
func hostFiles(ctx context.Context, progs []hostProgram) ([]imagearchive.File, error) {
	var files []imagearchive.File
	seen := map[string]bool{}
	for _, p := range progs {
		src, err := lookPath(p.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (install Debian's %s)", p.Name, err, p.Package)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		files = append(files, imagearchive.File{Path: p.Dest, Mode: 0o755, Data: data})
		out, err := exec.CommandContext(ctx, "ldd", src).Output()
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %w", src, err)
		}
		libs, err := parseLDD(string(out))
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %w", src, err)
		}
		for _, lib := range libs {
			if seen[lib] {
				continue
			}
			seen[lib] = true
			// ReadFile follows the symlink (libfoo.so.1 -> libfoo.so.1.2.3):
			// the image holds the file under the name the loader asks for.
			data, err := os.ReadFile(lib)
			if err != nil {
				return nil, fmt.Errorf("library of %s: %w", src, err)
			}
			files = append(files, imagearchive.File{Path: lib, Mode: 0o755, Data: data})
		}
	}
	return files, nil
}

// lookPath finds name on PATH or in the sbin folders, which root's PATH
// has and a CI shell's may not.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := path.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q not found: %w", name, fs.ErrNotExist)
}

// parseLDD returns the absolute paths of the libraries in ldd's output,
// sorted: "libx.so.1 => /lib/.../libx.so.1 (0x...)" and the loader's
// "/lib64/ld-linux-x86-64.so.2 (0x...)". The kernel's vDSO has no file. A
// library ldd cannot find is an error: the program would not start.
func parseLDD(out string) ([]string, error) {
	var libs []string
	scanner := bufio.NewScanner(strings.NewReader(out))
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.Contains(line, "statically linked") {
			continue
		}
		name, target, arrow := strings.Cut(line, "=>")
		if !arrow {
			target = name
		}
		target = strings.TrimSpace(target)
		if strings.HasPrefix(target, "not found") {
			return nil, fmt.Errorf("library %s not found", strings.TrimSpace(name))
		}
		file, _, _ := strings.Cut(target, " (")
		if !strings.HasPrefix(file, "/") {
			continue // linux-vdso.so.1
		}
		if path.Clean(file) != file {
			return nil, fmt.Errorf("library path %q is not clean", file)
		}
		libs = append(libs, file)
	}
	slices.Sort(libs)
	return slices.Compact(libs), nil
}
