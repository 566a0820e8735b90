package podruntime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// blockDevice returns a block device file of this machine, skipping when
// there is none (stat needs no privilege).
func blockDevice(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/dev/loop0", "/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/zram0"} {
		if info, err := os.Stat(p); err == nil && info.Mode().Type() == os.ModeDevice {
			return p
		}
	}
	t.Skip("no block device file in /dev to stand for a block volume")
	return ""
}

// claimPodWith is a pod with the claim volume "data" and one more source.
func claimPodWith(readOnly bool, extra v1.Volume) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns", UID: "u1"},
		Spec: v1.PodSpec{Volumes: []v1.Volume{
			{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data", ReadOnly: readOnly}}},
			extra,
		}},
	}
}

func TestContainerDevices(t *testing.T) {
	dev := blockDevice(t)
	pod := claimPodWith(false, v1.Volume{Name: "raw", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}})
	c := &v1.Container{Name: "db", VolumeDevices: []v1.VolumeDevice{{Name: "raw", DevicePath: "/dev/xvda"}}}
	cfg, err := ContainerConfig(ContainerParams{Pod: pod, Container: c, Env: &EnvVars{}, Mounts: map[string]string{"raw": dev}}, ResourceParams{}, "/")
	if err != nil {
		t.Fatal(err)
	}
	want := []*runtimeapi.Device{{ContainerPath: "/dev/xvda", HostPath: dev, Permissions: "mrw"}}
	if diff := cmp.Diff(want, cfg.Devices, cmp.Comparer(func(a, b *runtimeapi.Device) bool { return a.String() == b.String() })); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
	if len(cfg.Mounts) != 0 {
		t.Errorf("a block volume was also mounted: %v", cfg.Mounts)
	}

	// The same device as a file system mount of a claim is refused.
	c.VolumeDevices, c.VolumeMounts = nil, []v1.VolumeMount{{Name: "raw", MountPath: "/data"}}
	_, err = ContainerConfig(ContainerParams{Pod: pod, Container: c, Env: &EnvVars{}, Mounts: map[string]string{"raw": dev}}, ResourceParams{}, "/")
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), `volume "raw" is a block volume`) {
		t.Errorf("block volume in volumeMounts: error %v, want a configuration error naming it", err)
	}

	// A hostPath naming a device file is mounted as it is.
	hostPod := claimPodWith(false, v1.Volume{Name: "raw", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: dev}}})
	if _, err := ContainerConfig(ContainerParams{Pod: hostPod, Container: c, Env: &EnvVars{}, Mounts: map[string]string{"raw": dev}}, ResourceParams{}, "/"); err != nil {
		t.Errorf("hostPath device in volumeMounts: %v", err)
	}
}

func TestContainerDevicesRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "image")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pod := claimPodWith(false, v1.Volume{Name: "other", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}})
	tests := []struct {
		name   string
		mounts map[string]string
		want   string
	}{
		{"a directory", map[string]string{"data": dir}, `volume "data" in volumeDevices of container "db" is not a block device`},
		{"a regular file", map[string]string{"data": file}, `volume "data" in volumeDevices of container "db" is not a block device`},
		{"no such volume", map[string]string{}, `cannot find volume "data" to map into container "db"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &v1.Container{Name: "db", VolumeDevices: []v1.VolumeDevice{{Name: "data", DevicePath: "/dev/xvda"}}}
			_, err := ContainerConfig(ContainerParams{Pod: pod, Container: c, Env: &EnvVars{}, Mounts: tc.mounts}, ResourceParams{}, "/")
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want a configuration error with %q", err, tc.want)
			}
		})
	}
}

// TestClaimMounts: a read-only claim or CSI inline volume is mounted
// read-only whatever the volumeMount says, and subPath works below a
// claim's volume as below any other.
func TestClaimMounts(t *testing.T) {
	data, inline := t.TempDir(), t.TempDir()
	for _, readOnly := range []bool{false, true} {
		pod := claimPodWith(readOnly, v1.Volume{Name: "inline", VolumeSource: v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: "csi.example", ReadOnly: ptr.To(readOnly)}}})
		c := &v1.Container{Name: "db", VolumeMounts: []v1.VolumeMount{
			{Name: "data", MountPath: "/data"},
			{Name: "data", MountPath: "/logs", SubPath: "logs"},
			{Name: "inline", MountPath: "/inline"},
		}}
		cfg, err := ContainerConfig(ContainerParams{Pod: pod, Container: c, Env: &EnvVars{}, Mounts: map[string]string{"data": data, "inline": inline}}, ResourceParams{}, "/")
		if err != nil {
			t.Fatal(err)
		}
		type mount struct {
			Container, Host string
			RO              bool
		}
		var got []mount
		for _, m := range cfg.Mounts {
			got = append(got, mount{m.ContainerPath, m.HostPath, m.Readonly})
		}
		want := []mount{{"/data", data, readOnly}, {"/logs", filepath.Join(data, "logs"), readOnly}, {"/inline", inline, readOnly}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("readOnly %t: mounts (-want +got):\n%s", readOnly, diff)
		}
	}
	if info, err := os.Stat(filepath.Join(data, "logs")); err != nil || !info.IsDir() {
		t.Errorf("subPath directory in the claim's volume: %v", err)
	}
}
