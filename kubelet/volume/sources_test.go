package volume_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthnode/berth/kubelet/volume"
	volumetesting "github.com/berthnode/berth/kubelet/volume/testing"
	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestSetupEmptyDir(t *testing.T) {
	limited := func(pod *v1.Pod) {
		pod.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{
			Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("32Mi")},
		}}}
	}
	unlimited := func(pod *v1.Pod) { pod.Spec.Containers[0].Resources = v1.ResourceRequirements{} }
	tests := []struct {
		name        string
		source      v1.EmptyDirVolumeSource
		pod         func(*v1.Pod)
		wantOptions []string // nil: on disk
	}{{
		name:   "on disk",
		source: v1.EmptyDirVolumeSource{},
	}, {
		name:        "memory bounded by sizeLimit",
		source:      v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("64Mi"))},
		wantOptions: []string{"size=67108864"},
	}, {
		name:        "memory bounded by the pod's memory limit",
		source:      v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("1Gi"))},
		pod:         limited,
		wantOptions: []string{"size=134217728"},
	}, {
		name:        "memory bounded by the node's allocatable memory",
		source:      v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory},
		pod:         unlimited,
		wantOptions: []string{"size=8589934592"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testNode())
			pod := newPod(v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &tc.source}})
			if tc.pod != nil {
				tc.pod(pod)
			}
			dir := e.volumeDir("kubernetes.io~empty-dir", "scratch")
			for range 2 { // idempotent: one mount however often Setup runs
				if diff := cmp.Diff(map[string]string{"scratch": dir}, e.setup(pod)); diff != "" {
					t.Errorf("paths (-want +got):\n%s", diff)
				}
			}
			info, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode() != os.ModeDir|0o777 {
				t.Errorf("mode = %v, want drwxrwxrwx", info.Mode())
			}
			var want []volumetesting.FakeMount
			if tc.wantOptions != nil {
				want = []volumetesting.FakeMount{{Path: dir, FSType: "tmpfs", Options: tc.wantOptions}}
			}
			if diff := cmp.Diff(want, e.mounter.Mounts(), equateEmpty); diff != "" {
				t.Errorf("mounts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetupRefusesForeignMount(t *testing.T) {
	e := newEnv(t, appSecret())
	dir := e.volumeDir("kubernetes.io~secret", "creds")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.mounter.AddMount(dir, "ext4")
	_, err := e.m.Setup(e.ctx, newPod(v1.Volume{Name: "creds", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "app"}}}))
	if err == nil || !strings.Contains(err.Error(), "is a ext4 mount, want tmpfs") {
		t.Errorf("Setup error = %v, want a refusal to write into an ext4 mount", err)
	}
}

func TestSetupSecretNeverOnDisk(t *testing.T) {
	e := newEnv(t, appSecret())
	e.mounter.FailMounts(errors.New("operation not permitted"))
	_, err := e.m.Setup(e.ctx, newPod(v1.Volume{Name: "creds", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "app"}}}))
	if err == nil || !strings.HasPrefix(err.Error(), `volume "creds": mount tmpfs on `) {
		t.Fatalf("Setup error = %v, want the mount failure", err)
	}
	entries, err := os.ReadDir(e.volumeDir("kubernetes.io~secret", "creds"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("secret written to disk without its tmpfs: %v", entries)
	}
}

func TestSetupHostPath(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, f func(p string) error) string {
		p := filepath.Join(base, name)
		if err := f(p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dir := mk("dir", func(p string) error { return os.Mkdir(p, 0o755) })
	regular := mk("file", func(p string) error { return os.WriteFile(p, []byte("x"), 0o644) })
	link := mk("link-to-dir", func(p string) error { return os.Symlink(dir, p) })
	sock := filepath.Join(base, "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	missing := filepath.Join(base, "missing")

	tests := []struct {
		name    string
		path    string
		typ     v1.HostPathType
		wantErr string
		// check, when set, tests what the check created.
		wantMode os.FileMode
	}{
		{name: "no check on a missing path", path: missing, typ: v1.HostPathUnset},
		{name: "Directory", path: dir, typ: v1.HostPathDirectory},
		{name: "Directory through a symlink", path: link, typ: v1.HostPathDirectory},
		{name: "Directory missing", path: missing, typ: v1.HostPathDirectory, wantErr: "hostPath type check failed: " + missing + " does not exist, want Directory"},
		{name: "Directory is a file", path: regular, typ: v1.HostPathDirectory, wantErr: "hostPath type check failed: " + regular + " is a File, want Directory"},
		{name: "DirectoryOrCreate creates", path: filepath.Join(base, "new/dir"), typ: v1.HostPathDirectoryOrCreate, wantMode: os.ModeDir | 0o755},
		{name: "DirectoryOrCreate on a file", path: regular, typ: v1.HostPathDirectoryOrCreate, wantErr: "hostPath type check failed: " + regular + " is a File, want DirectoryOrCreate"},
		{name: "File", path: regular, typ: v1.HostPathFile},
		{name: "File is a directory", path: dir, typ: v1.HostPathFile, wantErr: "hostPath type check failed: " + dir + " is a Directory, want File"},
		{name: "FileOrCreate creates", path: filepath.Join(base, "new-file"), typ: v1.HostPathFileOrCreate, wantMode: 0o644},
		{name: "FileOrCreate without its parent", path: filepath.Join(base, "nope/file"), typ: v1.HostPathFileOrCreate, wantErr: "hostPath type check failed: create file " + filepath.Join(base, "nope/file")},
		{name: "Socket", path: sock, typ: v1.HostPathSocket},
		{name: "Socket is a file", path: regular, typ: v1.HostPathSocket, wantErr: "hostPath type check failed: " + regular + " is a File, want Socket"},
		{name: "CharDevice", path: "/dev/null", typ: v1.HostPathCharDev},
		{name: "BlockDevice is a char device", path: "/dev/null", typ: v1.HostPathBlockDev, wantErr: "hostPath type check failed: /dev/null is a CharDevice, want BlockDevice"},
		{name: "unknown type", path: dir, typ: "Fifo", wantErr: "hostPath " + dir + ` has unknown type "Fifo"`},
		{name: "relative path", path: "data", typ: v1.HostPathUnset, wantErr: `hostPath "data" is not absolute`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			pod := newPod(v1.Volume{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: tc.path, Type: &tc.typ}}})
			paths, err := e.m.Setup(e.ctx, pod)
			if tc.wantErr != "" {
				want := `volume "host": ` + tc.wantErr
				if err == nil || !strings.HasPrefix(err.Error(), want) {
					t.Errorf("Setup error = %v, want it to start with %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			if diff := cmp.Diff(map[string]string{"host": tc.path}, paths); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			if tc.wantMode != 0 {
				info, err := os.Stat(tc.path)
				if err != nil {
					t.Fatal(err)
				}
				if info.Mode() != tc.wantMode {
					t.Errorf("created with mode %v, want %v", info.Mode(), tc.wantMode)
				}
			}
		})
	}
}

func TestSetupUnsupported(t *testing.T) {
	tests := []struct {
		source v1.VolumeSource
		want   string
	}{
		{v1.VolumeSource{NFS: &v1.NFSVolumeSource{Server: "nfs", Path: "/export"}}, "nfs"},
		// Without a CSI node side in the Config.
		{v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: "csi.example"}}, "csi"},
		{v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: "registry.example/data:1"}}, "image"},
		{v1.VolumeSource{GitRepo: &v1.GitRepoVolumeSource{Repository: "https://git.example/repo"}}, "gitRepo"},
		{v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumHugePages}}, "emptyDir with medium HugePages"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			e := newEnv(t)
			_, err := e.m.Setup(e.ctx, newPod(v1.Volume{Name: "x", VolumeSource: tc.source}))
			want := `volume "x": unsupported volume type ` + tc.want + ` on this node`
			if err == nil || err.Error() != want {
				t.Errorf("Setup error = %v, want %q", err, want)
			}
			var unsupported *volume.UnsupportedError
			if !errors.As(err, &unsupported) || unsupported.Type != tc.want {
				t.Errorf("error %v does not unwrap to UnsupportedError{%q}", err, tc.want)
			}
		})
	}
}

func TestSetupReportsEveryFailedVolume(t *testing.T) {
	e := newEnv(t)
	pod := newPod(
		v1.Volume{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app"}}}},
		v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{NFS: &v1.NFSVolumeSource{Server: "nfs", Path: "/"}}},
	)
	paths, err := e.m.Setup(e.ctx, pod)
	if paths != nil {
		t.Errorf("paths = %v, want nil on error", paths)
	}
	want := []string{
		`volume "config": configmap "app" not found`,
		`volume "data": unsupported volume type nfs on this node`,
	}
	if diff := cmp.Diff(want, errorLines(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if verr := asVolumeError(t, err); verr.Volume != "config" {
		t.Errorf("first VolumeError names %q, want config", verr.Volume)
	}
	// The volumes that could be set up are, so that a retry has less to do.
	if _, err := os.Stat(e.volumeDir("kubernetes.io~empty-dir", "scratch")); err != nil {
		t.Errorf("emptyDir not set up beside the failures: %v", err)
	}
}

func TestSetupRefusesPathEscapes(t *testing.T) {
	e := newEnv(t)
	pod := newPod(v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}})
	pod.UID = "../../etc"
	if _, err := e.m.Setup(e.ctx, pod); err == nil {
		t.Error("Setup accepted a pod UID with a path in it")
	}
	if err := e.m.Teardown(e.ctx, "../.."); err == nil {
		t.Error("Teardown accepted a pod UID with a path in it")
	}
	pod = newPod(v1.Volume{Name: "..", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}})
	if _, err := e.m.Setup(e.ctx, pod); err == nil || err.Error() != `volume "..": invalid volume name ".."` {
		t.Errorf("Setup error = %v, want the volume name refused", err)
	}
}
