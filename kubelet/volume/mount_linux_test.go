package volume_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthnode/berth/kubelet/volume"
	volumetesting "github.com/berthnode/berth/kubelet/volume/testing"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// kernelRoot returns a temporary directory for real mounts, skipping when
// not root, and detaches whatever a failed test left mounted below it
// before the directory is removed.
func kernelRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting tmpfs needs root (CAP_SYS_ADMIN); run the tests as root to cover the system Mounter")
	}
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m := volume.NewSystemMounter()
		for range 10 {
			mounts, err := m.List(root)
			if err != nil || len(mounts) == 0 {
				return
			}
			_ = unix.Unmount(mounts[len(mounts)-1].Path, unix.MNT_DETACH)
		}
	})
	return root
}

func TestSystemMounterContract(t *testing.T) {
	volumetesting.RunMounterSuite(t, volume.NewSystemMounter(), kernelRoot(t))
}

func TestSystemMounterBusyUnmountIsLazy(t *testing.T) {
	root := kernelRoot(t)
	m := volume.NewSystemMounter()
	dir := filepath.Join(root, "busy")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.MountTmpfs(dir, []string{"size=1048576"}); err != nil {
		t.Fatal(err)
	}
	// An open file keeps the tmpfs busy.
	f, err := os.Create(filepath.Join(dir, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := m.Unmount(dir); err != nil {
		t.Fatalf("Unmount of a busy tmpfs: %v", err)
	}
	if mounts, _ := m.List(dir); len(mounts) != 0 {
		t.Errorf("busy tmpfs still listed after Unmount: %v", mounts)
	}
	if _, err := f.WriteString("still usable"); err != nil {
		t.Errorf("open file broke on lazy unmount: %v", err)
	}
}

// TestManagerOnRealTmpfs sets up and tears down memory-backed volumes with
// the system Mounter.
func TestManagerOnRealTmpfs(t *testing.T) {
	root := kernelRoot(t)
	e := newEnv(t, testNode(), rootCA(), appSecret())
	m, err := volume.New(volume.Config{RootDir: root, Client: e.client, NodeName: nodeName, Mounter: volume.NewSystemMounter(), Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	pod := newPod(
		kubeAPIAccess(),
		v1.Volume{Name: "creds", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "app"}}},
		v1.Volume{Name: "cache", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("1Mi"))}}},
	)
	var paths map[string]string
	for range 2 { // a second Setup mounts nothing more
		if paths, err = m.Setup(e.ctx, pod); err != nil {
			t.Fatalf("Setup: %v", err)
		}
	}
	for name, dir := range paths {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Type != unix.TMPFS_MAGIC {
			t.Errorf("volume %s at %s is not on tmpfs (type %#x)", name, dir, st.Type)
		}
		if name == "cache" && uint64(st.Blocks)*uint64(st.Bsize) != 1<<20 {
			t.Errorf("cache tmpfs size = %d bytes, want 1Mi", uint64(st.Blocks)*uint64(st.Bsize))
		}
	}
	if mounts, _ := volume.NewSystemMounter().List(root); len(mounts) != 3 {
		t.Errorf("mounts after two Setups = %v, want 3", mounts)
	}
	if data, err := os.ReadFile(filepath.Join(paths["kube-api-access-x2x9z"], "namespace")); err != nil || string(data) != "shop" {
		t.Errorf("namespace file = %q, %v", data, err)
	}

	// A process still holding a file makes the unmount lazy.
	held, err := os.Create(filepath.Join(paths["cache"], "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := m.Teardown(e.ctx, pod.UID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if mounts, _ := volume.NewSystemMounter().List(root); len(mounts) != 0 {
		t.Errorf("mounts after Teardown: %v", mounts)
	}
	if _, err := os.Stat(filepath.Join(root, "pods", string(pod.UID))); !os.IsNotExist(err) {
		t.Errorf("pod directory after Teardown: %v", err)
	}
}

// TestManagerLocalPVOnRealMounts: a local PV is bind-mounted, read-only
// when the claim says so, and Teardown unmounts it and removes the pod's
// directories while the PV's data stays.
func TestManagerLocalPVOnRealMounts(t *testing.T) {
	root := kernelRoot(t)
	disk := localDir(t)
	e := newEnv(t, boundClaim("data", "local-pv"), boundPV("local-pv", "data", localSource(disk)))
	m, err := volume.New(volume.Config{RootDir: root, Client: e.client, NodeName: nodeName, Mounter: volume.NewSystemMounter(), Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	pod := claimPod(claimSource("data", false))
	var paths map[string]string
	for range 2 { // a second Setup mounts nothing more
		if paths, err = m.Setup(e.ctx, pod); err != nil {
			t.Fatalf("Setup: %v", err)
		}
	}
	if mounts, _ := volume.NewSystemMounter().List(root); len(mounts) != 1 {
		t.Errorf("mounts after two Setups = %v, want the bind mount alone", mounts)
	}
	if data, err := os.ReadFile(filepath.Join(paths["data"], "precious")); err != nil || string(data) != "data" {
		t.Errorf("the PV's file through the pod's volume = %q, %v", data, err)
	}
	if err := os.WriteFile(filepath.Join(paths["data"], "written"), []byte("by the pod"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(e.ctx, pod.UID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if mounts, _ := volume.NewSystemMounter().List(root); len(mounts) != 0 {
		t.Errorf("mounts after Teardown: %v", mounts)
	}
	for _, name := range []string{"precious", "written"} {
		if _, err := os.Stat(filepath.Join(disk, name)); err != nil {
			t.Errorf("the PV's %s after Teardown: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "pods", string(pod.UID))); !os.IsNotExist(err) {
		t.Errorf("pod directory after Teardown: %v", err)
	}

	// A read-only claim gives a read-only bind mount.
	if paths, err = m.Setup(e.ctx, claimPod(claimSource("data", true))); err != nil {
		t.Fatalf("Setup read-only: %v", err)
	}
	if err := os.WriteFile(filepath.Join(paths["data"], "refused"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write to a read-only claim's volume: %v, want EROFS", err)
	}
	if err := m.Teardown(e.ctx, pod.UID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
}
