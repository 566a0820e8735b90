package imagearchive_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/cri/imagearchive"
)

func TestValidate(t *testing.T) {
	file := func(p string) imagearchive.File { return imagearchive.File{Path: p, Mode: 0o644} }
	for _, tc := range []struct {
		name      string
		modify    func(*imagearchive.Image)
		wantField string // "" means valid
	}{
		{name: "valid", modify: func(*imagearchive.Image) {}},
		{name: "no files", modify: func(img *imagearchive.Image) { img.Files = nil }},
		{name: "empty ref", modify: func(img *imagearchive.Image) { img.Ref = "" }, wantField: "Ref"},
		{name: "bad ref", modify: func(img *imagearchive.Image) { img.Ref = "Berth/Echo:v1" }, wantField: "Ref"},
		{name: "env without =", modify: func(img *imagearchive.Image) { img.Env = []string{"PATH"} }, wantField: "Env[0]"},
		{name: "env empty key", modify: func(img *imagearchive.Image) { img.Env = []string{"A=1", "=x"} }, wantField: "Env[1]"},
		{name: "relative workdir", modify: func(img *imagearchive.Image) { img.WorkingDir = "srv" }, wantField: "WorkingDir"},
		{name: "port without protocol", modify: func(img *imagearchive.Image) { img.ExposedPorts = []string{"80"} }, wantField: "ExposedPorts[0]"},
		{name: "port out of range", modify: func(img *imagearchive.Image) { img.ExposedPorts = []string{"0/tcp"} }, wantField: "ExposedPorts[0]"},
		{name: "port bad protocol", modify: func(img *imagearchive.Image) { img.ExposedPorts = []string{"80/icmp"} }, wantField: "ExposedPorts[0]"},
		{name: "relative path", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("bin/sh")) }, wantField: "Files[5].Path"},
		{name: "empty path", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("")) }, wantField: "Files[5].Path"},
		{name: "root path", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("/")) }, wantField: "Files[5].Path"},
		{name: "dot-dot path", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("/bin/../etc/x")) }, wantField: "Files[5].Path"},
		{name: "escaping path", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("/../x")) }, wantField: "Files[5].Path"},
		{name: "trailing slash", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("/etc/")) }, wantField: "Files[5].Path"},
		{name: "double slash", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("//etc/x")) }, wantField: "Files[5].Path"},
		{name: "duplicate path", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("/etc/motd")) }, wantField: "Files[5].Path"},
		{name: "parent is a file", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("/echo/x")) }, wantField: "Files[5].Path"},
		{name: "parent is a symlink", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("/usr/local/bin/sh/x")) }, wantField: "Files[5].Path"},
		{name: "parent is a listed dir", modify: func(img *imagearchive.Image) { img.Files = append(img.Files, file("/tmp/x")) }},
		{name: "symlink without target", modify: func(img *imagearchive.Image) {
			img.Files = append(img.Files, imagearchive.File{Path: "/x", Mode: fs.ModeSymlink})
		}, wantField: "Files[5]"},
		{name: "symlink with data", modify: func(img *imagearchive.Image) {
			img.Files = append(img.Files, imagearchive.File{Path: "/x", Mode: fs.ModeSymlink, Linkname: "y", Data: []byte("d")})
		}, wantField: "Files[5]"},
		{name: "file with link target", modify: func(img *imagearchive.Image) {
			img.Files = append(img.Files, imagearchive.File{Path: "/x", Mode: 0o644, Linkname: "y"})
		}, wantField: "Files[5]"},
		{name: "dir with data", modify: func(img *imagearchive.Image) {
			img.Files = append(img.Files, imagearchive.File{Path: "/x", Mode: fs.ModeDir | 0o755, Data: []byte("d")})
		}, wantField: "Files[5]"},
		{name: "device", modify: func(img *imagearchive.Image) {
			img.Files = append(img.Files, imagearchive.File{Path: "/dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666})
		}, wantField: "Files[5]"},
		{name: "named pipe", modify: func(img *imagearchive.Image) {
			img.Files = append(img.Files, imagearchive.File{Path: "/fifo", Mode: fs.ModeNamedPipe | 0o600})
		}, wantField: "Files[5]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := sampleImage()
			tc.modify(&img)
			err := img.Validate()
			gotField := ""
			if err != nil {
				var verr *imagearchive.ValidationError
				if !errors.As(err, &verr) {
					t.Fatalf("Validate() = %v, want a *ValidationError", err)
				}
				gotField = verr.Field
			}
			if gotField != tc.wantField {
				t.Errorf("Validate() = %v, want an error on field %q", err, tc.wantField)
			}
		})
	}
}

func TestValidateRef(t *testing.T) {
	valid := []string{
		"berth.local/pause:3.10",
		"berth.local/busybox:1.35",
		"busybox:latest",
		"library/busybox:1",
		"localhost/x:y",
		"localhost:5000/a/b/c:v1.2-rc_3",
		"registry.k8s.io/e2e-test-images/agnhost:2.52",
		"a.b-c/x__y.z--w:TAG",
		"berth.local/echo:" + strings.Repeat("a", 128),
	}
	invalid := []string{
		"",
		"busybox",               // no tag
		"berth.local/echo",      // no tag; the dot is not a tag
		"localhost:5000/echo",   // the port is not a tag
		"berth.local/echo:",     // empty tag
		"berth.local/echo:-v1",  // tag starts with '-'
		"berth.local/echo:v1/x", // '/' after the tag separator
		"echo@sha256:" + strings.Repeat("0", 64),
		"Echo:v1",                   // capitals in the name
		"berth.local/Echo:v1",       // capitals in a component
		"berth.local/echo..x:v1",    // double dot separator
		"berth.local/_echo:v1",      // leading separator
		"berth.local/echo_:v1",      // trailing separator
		"berth.local//echo:v1",      // empty component
		"-bad.local/echo:v1",        // domain label starts with '-'
		"berth.local:99999/echo:v1", // port out of range
		"berth.local:http/echo:v1",  // port not numeric
		"berth.local/echo:" + strings.Repeat("a", 129),
		"berth.local/" + strings.Repeat("a", 250) + ":v1",
	}
	var got, want []string
	for _, ref := range valid {
		want = append(want, ref+" ok")
		got = append(got, result(ref))
	}
	for _, ref := range invalid {
		want = append(want, ref+" invalid")
		got = append(got, result(ref))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reference validation (-want +got):\n%s", diff)
	}
}

func result(ref string) string {
	img := imagearchive.Image{Ref: ref}
	if err := img.Validate(); err != nil {
		return ref + " invalid"
	}
	return ref + " ok"
}
