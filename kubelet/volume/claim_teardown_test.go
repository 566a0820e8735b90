package volume_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berthnode/berth/kubelet/volume"
	volumetesting "github.com/berthnode/berth/kubelet/volume/testing"
	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// pvPod is the test pod with a CSI PV ("db"), a local PV ("data") and an
// emptyDir, and the API objects behind its claims.
func pvPod(t *testing.T, disk string) (*v1.Pod, []runtime.Object) {
	t.Helper()
	dbClaim := boundClaim("db", "csi-pv")
	dbClaim.UID = "db-claim-uid"
	csiPV := boundPV("csi-pv", "db", v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: "csi.example", VolumeHandle: "vol-1"}})
	csiPV.Spec.ClaimRef.UID = dbClaim.UID
	pod := newPod(
		v1.Volume{Name: "db", VolumeSource: claimSource("db", false)},
		v1.Volume{Name: "data", VolumeSource: claimSource("data", false)},
		v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
	)
	return pod, []runtime.Object{dbClaim, csiPV, boundClaim("data", "local-pv"), boundPV("local-pv", "data", localSource(disk))}
}

// TestTeardownPVs: CSI volumes are unpublished before anything is
// unmounted, the local PV's bind mount is unmounted before the pod's
// directories go, and the PV's data stays.
func TestTeardownPVs(t *testing.T) {
	disk := localDir(t)
	pod, objects := pvPod(t, disk)
	e := newEnv(t, objects...).withCSI()
	e.setup(pod)
	if got := len(e.mounter.Mounts()); got != 1 {
		t.Fatalf("%d mounts after Setup, want the local PV's bind mount", got)
	}
	if err := e.m.Teardown(e.ctx, podUID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	var tearDowns []volumetesting.CSICall
	for _, c := range e.csi.Calls() {
		if c.Op == "TearDown" {
			tearDowns = append(tearDowns, c)
		}
	}
	want := []volumetesting.CSICall{{Op: "TearDown", PodUID: podUID, SpecName: "csi-pv", MountsAtCall: 1}}
	if diff := cmp.Diff(want, tearDowns); diff != "" {
		t.Errorf("CSI TearDown calls (-want +got; MountsAtCall 1: before the local PV was unmounted):\n%s", diff)
	}
	if got := e.csi.Published(); len(got) != 0 {
		t.Errorf("still published: %v", got)
	}
	if diff := cmp.Diff([]volumetesting.FakeMount{}, e.mounter.Mounts(), equateEmpty); diff != "" {
		t.Errorf("mounts left (-want +got):\n%s", diff)
	}
	if data, err := os.ReadFile(filepath.Join(disk, "precious")); err != nil || string(data) != "data" {
		t.Errorf("local PV data after Teardown = %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(e.root, "pods", string(podUID))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pod directory left behind: %v", err)
	}
}

// TestTeardownRetriesCSI: a CSI driver that cannot unpublish yet (not
// registered again after a restart) fails Teardown, which leaves
// everything mounted in place; a later Teardown, by a new Manager that
// knows only the disk, finishes the job.
func TestTeardownRetriesCSI(t *testing.T) {
	disk := localDir(t)
	pod, objects := pvPod(t, disk)
	e := newEnv(t, objects...).withCSI()
	e.setup(pod)
	e.csi.FailTearDown(errors.New("driver csi.example not registered"))
	err := e.m.Teardown(e.ctx, podUID)
	if err == nil || !strings.Contains(err.Error(), `CSI volume "csi-pv"`) || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("Teardown error = %v, want one naming the CSI volume and the cause", err)
	}
	if got := len(e.mounter.Mounts()); got != 1 {
		t.Errorf("%d mounts after a failed Teardown, want the local PV's still in place", got)
	}
	if _, err := os.Stat(e.volumeDir("kubernetes.io~csi", "csi-pv")); err != nil {
		t.Errorf("CSI volume directory after a failed Teardown: %v", err)
	}

	e.csi.FailTearDown(nil)
	restarted, err := volume.New(volume.Config{RootDir: e.root, Client: e.client, NodeName: nodeName, Mounter: e.mounter, Clock: e.clock, CSI: e.csi})
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.Teardown(e.ctx, podUID); err != nil {
		t.Fatalf("Teardown again: %v", err)
	}
	if got := e.csi.Published(); len(got) != 0 {
		t.Errorf("still published: %v", got)
	}
	if _, err := os.Stat(filepath.Join(disk, "precious")); err != nil {
		t.Errorf("local PV data after Teardown: %v", err)
	}
}

func TestTeardownCSIWithoutNodeSide(t *testing.T) {
	e := newEnv(t)
	dir := e.volumeDir("kubernetes.io~csi", "csi-pv")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	err := e.m.Teardown(e.ctx, podUID)
	if err == nil || !strings.Contains(err.Error(), "no CSI node side") {
		t.Errorf("Teardown error = %v, want one saying CSI volumes are left", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("CSI volume directory removed without unpublishing: %v", err)
	}
}

// TestTeardownNeverEntersAMount: a mount that the listing missed is still
// not entered: what shows through it is not the pod's.
func TestTeardownNeverEntersAMount(t *testing.T) {
	disk := localDir(t)
	e := newEnv(t, boundClaim("data", "local-pv"), boundPV("local-pv", "data", localSource(disk)))
	dir := e.setup(claimPod(claimSource("data", false)))["data"]
	// Stands for the PV's data as seen through the bind mount.
	seen := filepath.Join(dir, "precious")
	if err := os.WriteFile(seen, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	blind := &listBlindMounter{FakeMounter: e.mounter}
	m, err := volume.New(volume.Config{RootDir: e.root, Client: e.client, NodeName: nodeName, Mounter: blind, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(e.ctx, podUID); err == nil || !strings.Contains(err.Error(), "still a mount point") {
		t.Errorf("Teardown error = %v, want a refusal to enter the mount point", err)
	}
	if _, err := os.Stat(seen); err != nil {
		t.Errorf("Teardown removed files below a mount point: %v", err)
	}
}

// listBlindMounter lists no mounts, though MountedAt still sees them.
type listBlindMounter struct {
	*volumetesting.FakeMounter
}

func (*listBlindMounter) List(string) ([]volume.MountPoint, error) { return nil, nil }

// TestSetupFSGroupOnPVs: the pod's fsGroup goes to a local PV and to a CSI
// volume whose driver leaves it to the node, once; not to a hostPath PV
// nor to a read-only claim. OnRootMismatch skips a volume whose root has
// the group already.
func TestSetupFSGroupOnPVs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing groups needs root; run the tests as root to cover fsGroup on PersistentVolumes")
	}
	const gid = 2000
	groupOf := func(p string) uint32 {
		t.Helper()
		info, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return statGID(info)
	}
	t.Run("local, Always", func(t *testing.T) {
		disk := localDir(t)
		e := newEnv(t, boundClaim("data", "local-pv"), boundPV("local-pv", "data", localSource(disk)))
		pod := claimPod(claimSource("data", false))
		pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr[int64](gid)}
		dir := e.setup(pod)["data"]
		// The fake bind mount does not show the disk: the files are the
		// mount point's own.
		// A file a container gave to another group since.
		if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, "f"), 0, 0); err != nil {
			t.Fatal(err)
		}
		e.setup(pod)
		if got := groupOf(filepath.Join(dir, "f")); got != 0 {
			t.Errorf("file given to group 0 after the first Setup has group %d: ownership was applied again", got)
		}
		if got := groupOf(dir); got != gid {
			t.Errorf("volume root group = %d, want %d", got, gid)
		}
	})
	t.Run("local, OnRootMismatch with the root owned", func(t *testing.T) {
		disk := localDir(t)
		e := newEnv(t, boundClaim("data", "local-pv"), boundPV("local-pv", "data", localSource(disk)))
		pod := claimPod(claimSource("data", false))
		policy := v1.FSGroupChangeOnRootMismatch
		pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr[int64](gid), FSGroupChangePolicy: &policy}
		dir := e.volumeDir("kubernetes.io~local-volume", "local-pv")
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 0, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o770|os.ModeSetgid); err != nil {
			t.Fatal(err)
		}
		e.setup(pod)
		if got := groupOf(filepath.Join(dir, "f")); got != 0 {
			t.Errorf("file below an owned root got group %d under OnRootMismatch", got)
		}
	})
	t.Run("csi, node applies", func(t *testing.T) {
		pod, objects := pvPod(t, localDir(t))
		pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr[int64](gid)}
		e := newEnv(t, objects...).withCSI()
		e.csi.SetApplyFSGroup(true)
		paths := e.setup(pod)
		if got := groupOf(paths["db"]); got != gid {
			t.Errorf("CSI volume group = %d, want %d", got, gid)
		}
	})
	t.Run("csi, driver applies", func(t *testing.T) {
		pod, objects := pvPod(t, localDir(t))
		pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr[int64](gid)}
		e := newEnv(t, objects...).withCSI()
		paths := e.setup(pod)
		if got := groupOf(paths["db"]); got != 0 {
			t.Errorf("CSI volume group = %d, want the driver's business (0)", got)
		}
	})
	t.Run("read-only claim and hostPath", func(t *testing.T) {
		host := t.TempDir()
		disk := localDir(t)
		hostClaim := boundClaim("host", "host-pv")
		hostClaim.UID = "host-claim-uid"
		hostPV := boundPV("host-pv", "host", v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: host}})
		hostPV.Spec.ClaimRef.UID = hostClaim.UID
		e := newEnv(t, boundClaim("data", "local-pv"), boundPV("local-pv", "data", localSource(disk)), hostClaim, hostPV)
		pod := newPod(
			v1.Volume{Name: "data", VolumeSource: claimSource("data", true)},
			v1.Volume{Name: "host", VolumeSource: claimSource("host", false)},
		)
		pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr[int64](gid)}
		paths := e.setup(pod)
		for _, name := range []string{"data", "host"} {
			if got := groupOf(paths[name]); got == gid {
				t.Errorf("volume %s got the fsGroup", name)
			}
		}
	})
}

func TestClaimObjectsReadWithGet(t *testing.T) {
	disk := localDir(t)
	e := newEnv(t, boundClaim("data", "local-pv"), boundPV("local-pv", "data", localSource(disk)))
	e.setup(claimPod(claimSource("data", false)))
	var verbs []string
	for _, a := range e.client.Actions() {
		verbs = append(verbs, a.GetVerb()+" "+a.GetResource().Resource)
	}
	// The Node authorizer lets a node get its pods' claims and volumes,
	// not list or watch them.
	if diff := cmp.Diff([]string{"get persistentvolumeclaims", "get persistentvolumes"}, verbs); diff != "" {
		t.Errorf("API calls (-want +got):\n%s", diff)
	}
}

func statGID(info fs.FileInfo) uint32 {
	return info.Sys().(*syscall.Stat_t).Gid
}
