package conformance

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/cri/imagearchive"
)

func TestParseLDD(t *testing.T) {
	for _, tc := range []struct {
		name    string
		out     string
		want    []string
		wantErr bool
	}{{
		name: "dynamic program",
		out: "\tlinux-vdso.so.1 (0x00007ffd)\n" +
			"\tlibidn2.so.0 => /lib/x86_64-linux-gnu/libidn2.so.0 (0x00007f01)\n" +
			"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)\n" +
			"\t/lib64/ld-linux-x86-64.so.2 (0x00007f03)\n" +
			"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)\n",
		want: []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libidn2.so.0", "/lib64/ld-linux-x86-64.so.2"},
	}, {
		name: "static program",
		out:  "\tnot a dynamic executable\n\tstatically linked\n",
	}, {
		name:    "missing library",
		out:     "\tlibgone.so.3 => not found\n",
		wantErr: true,
	}, {
		name:    "unclean path",
		out:     "\tlibx.so => /lib/../lib/libx.so (0x1)\n",
		wantErr: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLDD(tc.out)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseLDD() error = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseLDD() (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeParts are parts with placeholder content: what catalog lays out does
// not depend on it.
func fakeParts() parts {
	host := []imagearchive.File{{Path: "/lib/x86_64-linux-gnu/libc.so.6", Mode: 0o755, Data: []byte("libc")}}
	for _, h := range hostPrograms {
		host = append(host, imagearchive.File{Path: h.Dest, Mode: 0o755, Data: []byte(h.Name)})
	}
	b := []byte("bin")
	return parts{
		Busybox: b, Applets: []string{"sh", "env", "nc", "netstat", "ip", "nslookup", "httpd", "id", "cat", "seq"},
		Pause: b, Agnhost: b, Nonewprivs: b, CoreDNS: b,
		PorterCert: b, PorterKey: b, KittenJPEG: b, KittenData: b,
		Host: host,
	}
}

// describe renders a file for comparisons: "-> target", "dir", or the
// mode.
func describe(f imagearchive.File) string {
	switch f.Mode.Type() {
	case fs.ModeSymlink:
		return "-> " + f.Linkname
	case fs.ModeDir:
		return "dir"
	default:
		return f.Mode.String()
	}
}

// TestCatalog checks what each image holds of what the selected tests run
// in it, and that every image is writable.
func TestCatalog(t *testing.T) {
	want := map[string]struct {
		entrypoint, cmd []string
		user            string
		files           map[string]string // path -> describe; "" means absent
	}{
		PauseRef: {entrypoint: []string{"/pause"}, user: "65535:65535", files: map[string]string{"/pause": "-rwxr-xr-x"}},
		AgnhostRef: {entrypoint: []string{"/agnhost"}, cmd: []string{"pause"}, files: map[string]string{
			"/agnhost": "-rwxr-xr-x", "/agnhost-2": "-> agnhost", "/coredns": "-rwxr-xr-x",
			"/bin/sh": "-> busybox", "/bin/netstat": "-> busybox", "/bin/env": "-> busybox",
			// Debian's programs replace the applets of the same name.
			"/usr/bin/nc": "-rwxr-xr-x", "/bin/nc": "", "/usr/bin/ip": "-rwxr-xr-x", "/bin/ip": "",
			"/usr/bin/dig": "-rwxr-xr-x", "/usr/bin/curl": "-rwxr-xr-x", "/usr/bin/ss": "-rwxr-xr-x",
			"/usr/bin/getent": "-rwxr-xr-x", "/bin/bash": "-rwxr-xr-x", "/lib/x86_64-linux-gnu/libc.so.6": "-rwxr-xr-x",
			"/localhost.crt": "-rw-r--r--", "/uploads": "dir", "/tmp": "dir",
		}},
		BusyboxRef: {cmd: []string{"sh"}, files: map[string]string{
			"/bin/busybox": "-rwxr-xr-x", "/bin/sh": "-> busybox", "/bin/nc": "-> busybox", "/bin/ip": "-> busybox",
			"/usr/bin/dig": "", "/etc/passwd": "-rw-r--r--",
		}},
		NginxRef: {cmd: []string{"sh", "-c", "trap 'exit 0' TERM; httpd -f -p 80 -h /usr/share/nginx/html & wait"}, files: map[string]string{
			"/bin/httpd": "-> busybox", "/usr/share/nginx/html/index.html": "-rw-r--r--",
		}},
		GlibcDNSTestingRef: {cmd: []string{"bash"}, files: map[string]string{
			"/usr/bin/dig": "-rwxr-xr-x", "/usr/bin/nslookup": "-rwxr-xr-x", "/usr/bin/getent": "-rwxr-xr-x",
			"/bin/bash": "-rwxr-xr-x", "/bin/seq": "-> busybox", "/bin/sh": "-> busybox", "/etc/nsswitch.conf": "-rw-r--r--",
		}},
		NonewprivsRef: {cmd: []string{"nnp"}, files: map[string]string{"/usr/local/bin/nnp": "ugrwxr-xr-x", "/bin/id": "-> busybox"}},
		NonRootRef:    {cmd: []string{"/bin/sh"}, user: "1234", files: map[string]string{"/bin/sh": "-> busybox"}},
		KittenRef: {entrypoint: []string{"/agnhost"}, cmd: []string{"test-webserver"}, files: map[string]string{
			"/kitten.jpg": "-rw-r--r--", "/data.json": "-rw-r--r--", "/agnhost": "-rwxr-xr-x",
		}},
		CoreDNSRef: {entrypoint: []string{"/coredns"}, files: map[string]string{"/coredns": "-rwxr-xr-x", "/bin/sh": ""}},
	}
	imgs := catalog(fakeParts())
	var refs []string
	for _, img := range imgs {
		refs = append(refs, img.Ref)
		if err := img.Validate(); err != nil {
			t.Errorf("%s: %v", img.Ref, err)
		}
		w, ok := want[img.Ref]
		if !ok {
			continue
		}
		if diff := cmp.Diff(w.entrypoint, img.Entrypoint); diff != "" {
			t.Errorf("%s entrypoint (-want +got):\n%s", img.Ref, diff)
		}
		if diff := cmp.Diff(w.cmd, img.Cmd); diff != "" {
			t.Errorf("%s cmd (-want +got):\n%s", img.Ref, diff)
		}
		if img.User != w.user {
			t.Errorf("%s user = %q, want %q", img.Ref, img.User, w.user)
		}
		got := map[string]string{}
		for _, f := range img.Files {
			if _, ok := w.files[f.Path]; ok {
				got[f.Path] = describe(f)
			}
		}
		for p, d := range w.files {
			if d == "" {
				d = got[p] // absent: compare "" with whatever is there
				if d != "" {
					t.Errorf("%s holds %s (%s), want it absent", img.Ref, p, d)
				}
				continue
			}
			if got[p] != d {
				t.Errorf("%s: %s is %q, want %q", img.Ref, p, got[p], d)
			}
		}
	}
	wantRefs := []string{PauseRef, AgnhostRef, AgnhostPrevRef, BusyboxRef, NginxRef, GlibcDNSTestingRef, NonewprivsRef, NonRootRef, KittenRef, CoreDNSRef}
	if diff := cmp.Diff(wantRefs, refs); diff != "" {
		t.Errorf("catalog refs (-want +got):\n%s", diff)
	}
	seen := map[string]bool{}
	for _, r := range refs {
		if seen[archiveName(r)] {
			t.Errorf("two images share the archive name %s", archiveName(r))
		}
		seen[archiveName(r)] = true
	}
}

// TestRefsMatchUpstream reads the e2e suite's image manifest from the
// module cache (where `make setup` put k8s.io/kubernetes) and checks every
// e2e reference against it: a Kubernetes bump that changes a tag fails
// here rather than as an image pull error in a conformance run.
func TestRefsMatchUpstream(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	modCache := strings.TrimSpace(string(out))
	src, err := os.ReadFile(filepath.Join(modCache, "k8s.io", "kubernetes@v1.37.2", "test", "utils", "image", "manifest.go"))
	if err != nil {
		t.Skipf("upstream manifest not in the module cache (run make setup): %v", err)
	}
	registries := map[string]string{
		"PromoterE2eRegistry": "registry.k8s.io/e2e-test-images",
		"GcRegistry":          "registry.k8s.io",
	}
	upstream := map[string]string{}
	re := regexp.MustCompile(`configs\[(\w+)\] = Config\{list\.(\w+), "([^"]+)", "([^"]+)"\}`)
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		if reg, ok := registries[m[2]]; ok {
			upstream[m[1]] = reg + "/" + m[3] + ":" + m[4]
		}
	}
	for id, ref := range map[string]string{
		"Agnhost": AgnhostRef, "AgnhostPrev": AgnhostPrevRef, "BusyBox": BusyboxRef, "Pause": PauseRef,
		"Nginx": NginxRef, "GlibcDnsTesting": GlibcDNSTestingRef, "Nonewprivs": NonewprivsRef,
		"NonRoot": NonRootRef, "Kitten": KittenRef,
	} {
		if upstream[id] != ref {
			t.Errorf("imageutils.%s is %q upstream, we build %q", id, upstream[id], ref)
		}
	}
	kubeadm, err := os.ReadFile(filepath.Join(modCache, "k8s.io", "kubernetes@v1.37.2", "cmd", "kubeadm", "app", "constants", "constants.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`CoreDNSVersion = "([^"]+)"`).FindSubmatch(kubeadm)
	if m == nil || "registry.k8s.io/coredns/coredns:"+string(m[1]) != CoreDNSRef {
		t.Errorf("kubeadm's CoreDNSVersion is %q, we build %q", m, CoreDNSRef)
	}
}
