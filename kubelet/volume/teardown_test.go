package volume_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/berthnode/berth/kubelet/volume"
	volumetesting "github.com/berthnode/berth/kubelet/volume/testing"
	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// everyVolume is a pod using every supported source, hostPath included.
func everyVolume(hostDir string) *v1.Pod {
	return newPod(
		kubeAPIAccess(),
		v1.Volume{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "app"}}}},
		v1.Volume{Name: "creds", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "app"}}},
		v1.Volume{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}},
		}}}},
		v1.Volume{Name: "cache", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("16Mi"))}}},
		v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		v1.Volume{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir, Type: ptr(v1.HostPathDirectoryOrCreate)}}},
	)
}

func TestTeardown(t *testing.T) {
	e := newEnv(t, testNode(), rootCA(), appConfigMap(), appSecret())
	hostDir := filepath.Join(t.TempDir(), "host-data")
	paths := e.setup(everyVolume(hostDir))
	if got := len(e.mounter.Mounts()); got != 4 {
		t.Fatalf("%d tmpfs mounts after Setup, want 4 (projected, secret, downwardAPI, memory emptyDir)", got)
	}

	// A container wrote into its emptyDir a link to something outside the
	// pod, and into the host path.
	outside := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(paths["scratch"], "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "kept"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mounter.SetBusy(paths["creds"])

	if err := e.m.Teardown(e.ctx, podUID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if diff := cmp.Diff([]volumetesting.FakeMount{}, e.mounter.Mounts(), equateEmpty); diff != "" {
		t.Errorf("mounts left (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{paths["creds"]}, e.mounter.Lazy()); diff != "" {
		t.Errorf("lazily detached (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(e.root, "pods", string(podUID))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pod directory left behind: %v", err)
	}
	for _, p := range []string{outside, filepath.Join(hostDir, "kept")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("Teardown removed %s outside the pod: %v", p, err)
		}
	}
	if _, ok := e.m.RefreshTime(podUID); ok {
		t.Error("tokens of a torn down pod are still tracked")
	}

	// Idempotent, and fine for pods it never saw.
	for _, uid := range []types.UID{podUID, "never-seen"} {
		if err := e.m.Teardown(e.ctx, uid); err != nil {
			t.Errorf("Teardown(%s) again: %v", uid, err)
		}
	}
}

func TestTeardownKeepsWhatOthersKeepInThePodDir(t *testing.T) {
	e := newEnv(t)
	e.setup(newPod(v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}))
	hosts := filepath.Join(e.root, "pods", string(podUID), "etc-hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Teardown(e.ctx, podUID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if _, err := os.Stat(hosts); err != nil {
		t.Errorf("Teardown removed a file it did not make: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.root, "pods", string(podUID), "volumes")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("volumes directory left behind: %v", err)
	}
}

func TestTeardownStopsAtMountsItCannotRemove(t *testing.T) {
	e := newEnv(t)
	dir := e.setup(newPod(v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}))["scratch"]
	if err := os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	stuck := &stuckMounter{FakeMounter: e.mounter}
	m, err := volume.New(volume.Config{RootDir: e.root, Client: e.client, NodeName: nodeName, Mounter: stuck, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.mounter.AddMount(dir, "nfs") // someone else's mount
	if err := m.Teardown(e.ctx, podUID); err == nil {
		t.Fatal("Teardown succeeded with a mount it could not unmount")
	}
	// Nothing below the mount was removed.
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("Teardown removed files below a mount: %v", err)
	}
}

// stuckMounter fails every Unmount.
type stuckMounter struct {
	*volumetesting.FakeMounter
}

func (s *stuckMounter) Unmount(dir string) error {
	return fmt.Errorf("unmount %s: device or resource busy", dir)
}

func TestConcurrentPods(t *testing.T) {
	e := newEnv(t, testNode(), rootCA(), appConfigMap(), appSecret())
	hostDir := filepath.Join(t.TempDir(), "host")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 8 {
		pod := everyVolume(hostDir)
		pod.UID = types.UID(fmt.Sprintf("pod-%d", i))
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.m.Setup(e.ctx, pod); err != nil {
					errs <- err
				}
				if err := e.m.Teardown(e.ctx, pod.UID); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.mounter.Mounts(); len(got) != 0 {
		t.Errorf("mounts left: %v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() volume.Config {
		return volume.Config{
			RootDir:  "/var/lib/kubelet",
			Client:   newEnv(t).client,
			NodeName: nodeName,
			Mounter:  volumetesting.NewFakeMounter(),
			Clock:    clock.RealClock{},
		}
	}
	tests := []struct {
		name   string
		modify func(*volume.Config)
		want   string
	}{
		{name: "valid", modify: func(*volume.Config) {}},
		{name: "no root", modify: func(c *volume.Config) { c.RootDir = "" }, want: "volume config: missing RootDir"},
		{name: "relative root", modify: func(c *volume.Config) { c.RootDir = "var/lib/kubelet" }, want: `volume config: relative RootDir "var/lib/kubelet", want an absolute path`},
		{name: "no client", modify: func(c *volume.Config) { c.Client = nil }, want: "volume config: missing Client"},
		{name: "no node", modify: func(c *volume.Config) { c.NodeName = "" }, want: "volume config: missing NodeName"},
		{name: "no mounter", modify: func(c *volume.Config) { c.Mounter = nil }, want: "volume config: missing Mounter"},
		{name: "no clock", modify: func(c *volume.Config) { c.Clock = nil }, want: "volume config: missing Clock"},
		{name: "everything missing", modify: func(c *volume.Config) { *c = volume.Config{} }, want: "volume config: missing RootDir\nmissing Client\nmissing NodeName\nmissing Mounter\nmissing Clock"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.modify(&cfg)
			err := cfg.Validate()
			var got string
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
			if tc.want != "" {
				if _, err := volume.New(cfg); err == nil {
					t.Error("New accepted an invalid config")
				}
			}
		})
	}
}
