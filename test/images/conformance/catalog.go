package conformance

import (
	"io/fs"
	"path"
	"slices"

	"github.com/berthnode/berth/cri/imagearchive"
	"github.com/berthnode/berth/test/images"
)

// parts are the built programs and files the images are assembled from.
type parts struct {
	// Busybox is the static busybox of test/tools/busybox/build.sh.
	Busybox []byte
	// Applets are the applets that busybox lists.
	Applets []string
	// Pause is berth's pause program.
	Pause []byte
	// Agnhost, Nonewprivs and CoreDNS are the static programs of
	// test/tools/build-e2e-programs.sh.
	Agnhost, Nonewprivs, CoreDNS []byte
	// PorterCert and PorterKey are agnhost porter's TLS pair.
	PorterCert, PorterKey []byte
	// KittenJPEG and KittenData are kitten's page.
	KittenJPEG, KittenData []byte
	// Host holds the Debian programs of hostPrograms and their libraries.
	Host []imagearchive.File
}

// imagePATH is the PATH of every image, as Alpine's and Debian's.
const imagePATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Accounts of /etc/passwd and /etc/group: root and nobody as in busybox, and
// the user and group that agnhost's image defines (tests of
// supplementalGroupsPolicy read them).
const (
	basePasswd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	baseGroup  = "root:x:0:\nnogroup:x:65534:\n"

	agnhostPasswd = basePasswd + "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"
	agnhostGroup  = baseGroup + "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"
)

// catalog returns every image, each under its upstream reference.
func catalog(p parts) []imagearchive.Image {
	agnhost := agnhostFiles(p)
	kitten := append(slices.Clone(agnhost),
		imagearchive.File{Path: "/kitten.jpg", Mode: 0o644, Data: p.KittenJPEG},
		imagearchive.File{Path: "/data.json", Mode: 0o644, Data: p.KittenData},
	)
	return []imagearchive.Image{
		images.PauseImage(PauseRef, p.Pause),
		agnhostImage(AgnhostRef, agnhost),
		agnhostImage(AgnhostPrevRef, agnhost),
		{
			Ref:   BusyboxRef,
			Cmd:   []string{"sh"},
			Env:   []string{imagePATH},
			Files: shellFiles(p, basePasswd, baseGroup),
		},
		nginxImage(p),
		{
			Ref:   GlibcDNSTestingRef,
			Cmd:   []string{"bash"},
			Env:   []string{imagePATH},
			Files: debianFiles(p, basePasswd, baseGroup),
		},
		{
			Ref: NonewprivsRef,
			Cmd: []string{"nnp"},
			Env: []string{imagePATH},
			// Setuid root, as upstream's `chmod +s`: the test runs it as a
			// non-root user and reads the effective uid it prints.
			Files: append(shellFiles(p, basePasswd, baseGroup), imagearchive.File{
				Path: "/usr/local/bin/nnp", Mode: fs.ModeSetuid | fs.ModeSetgid | 0o755, Data: p.Nonewprivs,
			}),
		},
		{
			Ref:   NonRootRef,
			Cmd:   []string{"/bin/sh"},
			Env:   []string{imagePATH},
			User:  "1234",
			Files: shellFiles(p, basePasswd, baseGroup),
		},
		{
			Ref:          KittenRef,
			Entrypoint:   []string{"/agnhost"},
			Cmd:          []string{"test-webserver"},
			Env:          []string{imagePATH},
			ExposedPorts: agnhostPorts,
			Files:        kitten,
		},
		{
			Ref:          CoreDNSRef,
			Entrypoint:   []string{"/coredns"},
			ExposedPorts: []string{"53/tcp", "53/udp", "9153/tcp"},
			Files:        []imagearchive.File{{Path: "/coredns", Mode: 0o755, Data: p.CoreDNS}},
		},
	}
}

// nginxImage is a stand-in for nginx: busybox httpd serving a page on port
// 80. The tests create nginx pods as endpoints and as targets of image
// updates and preStop hooks; they need a server on port 80 that stops on
// SIGTERM. httpd as PID 1 would ignore SIGTERM (the kernel drops
// default-action signals to a namespace's init), so a shell with a trap is
// PID 1.
func nginxImage(p parts) imagearchive.Image {
	return imagearchive.Image{
		Ref:          NginxRef,
		Cmd:          []string{"sh", "-c", "trap 'exit 0' TERM; httpd -f -p 80 -h /usr/share/nginx/html & wait"},
		Env:          []string{imagePATH},
		ExposedPorts: []string{"80/tcp"},
		Files: append(shellFiles(p, basePasswd, baseGroup), imagearchive.File{
			Path: "/usr/share/nginx/html/index.html", Mode: 0o644,
			Data: []byte("<!DOCTYPE html>\n<html><body><p>nginx stand-in: busybox httpd (berth test image)</p></body></html>\n"),
		}),
	}
}

// agnhostPorts are the ports upstream's agnhost image exposes.
var agnhostPorts = []string{"80/tcp", "8080/tcp", "8081/tcp", "9376/tcp", "5000/tcp"}

func agnhostImage(ref string, files []imagearchive.File) imagearchive.Image {
	return imagearchive.Image{
		Ref:          ref,
		Entrypoint:   []string{"/agnhost"},
		Cmd:          []string{"pause"},
		Env:          []string{imagePATH},
		ExposedPorts: agnhostPorts,
		Files:        files,
	}
}

// agnhostFiles lay out agnhost as upstream's image does: the program at
// /agnhost (and /agnhost-2), CoreDNS at /coredns (the DNS nameserver test
// runs it from the agnhost image), porter's TLS pair at /, an /uploads
// folder, and the shell and Debian programs the tests exec.
func agnhostFiles(p parts) []imagearchive.File {
	return append(debianFiles(p, agnhostPasswd, agnhostGroup),
		imagearchive.File{Path: "/agnhost", Mode: 0o755, Data: p.Agnhost},
		imagearchive.File{Path: "/agnhost-2", Mode: fs.ModeSymlink | 0o777, Linkname: "agnhost"},
		imagearchive.File{Path: "/coredns", Mode: 0o755, Data: p.CoreDNS},
		imagearchive.File{Path: "/localhost.crt", Mode: 0o644, Data: p.PorterCert},
		imagearchive.File{Path: "/localhost.key", Mode: 0o644, Data: p.PorterKey},
		imagearchive.File{Path: "/uploads", Mode: fs.ModeDir | 0o755},
	)
}

// shellFiles are busybox with its applets, the accounts and
// /etc/nsswitch.conf.
func shellFiles(p parts, passwd, group string) []imagearchive.File {
	return withShell(p, p.Applets, passwd, group)
}

// debianFiles are shellFiles plus the Debian programs of p.Host. An applet
// that one of them replaces (ip, nslookup) is left out, so that each name
// means one program.
func debianFiles(p parts, passwd, group string) []imagearchive.File {
	replaced := map[string]bool{}
	for _, h := range hostPrograms {
		replaced[path.Base(h.Dest)] = true
	}
	applets := slices.DeleteFunc(slices.Clone(p.Applets), func(a string) bool { return replaced[a] })
	return append(withShell(p, applets, passwd, group), p.Host...)
}

func withShell(p parts, applets []string, passwd, group string) []imagearchive.File {
	return append(images.BusyboxFiles(p.Busybox, applets),
		imagearchive.File{Path: "/etc/passwd", Mode: 0o644, Data: []byte(passwd)},
		imagearchive.File{Path: "/etc/group", Mode: 0o644, Data: []byte(group)},
		// glibc's getent and resolver read it; busybox ignores it.
		imagearchive.File{Path: "/etc/nsswitch.conf", Mode: 0o644, Data: []byte("passwd: files\ngroup: files\nhosts: files dns\n")},
	)
}
