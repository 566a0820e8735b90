package volume_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthnode/berth/kubelet/csi"
	"github.com/berthnode/berth/kubelet/volume"
	volumetesting "github.com/berthnode/berth/kubelet/volume/testing"
	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

const claimUID = types.UID("6b1c2d3e-2222-4c3b-9c55-1d2e3f4a5b6c")

// boundClaim is the claim "data" of the test pod's namespace, bound to the
// volume pvName.
func boundClaim(name, pvName string) *v1.PersistentVolumeClaim {
	return &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: claimUID, Finalizers: []string{"kubernetes.io/pvc-protection"}},
		Spec:       v1.PersistentVolumeClaimSpec{VolumeName: pvName},
		Status:     v1.PersistentVolumeClaimStatus{Phase: v1.ClaimBound},
	}
}

// boundPV is a PersistentVolume with source src bound to the claim name.
func boundPV(name, claim string, src v1.PersistentVolumeSource) *v1.PersistentVolume {
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeSource: src,
			ClaimRef:               &v1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: "shop", Name: claim, UID: claimUID},
		},
	}
}

func localSource(path string) v1.PersistentVolumeSource {
	return v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: path}}
}

// claimPod is the test pod with the volume "data" of source src mounted
// at /data by its container.
func claimPod(src v1.VolumeSource) *v1.Pod {
	pod := newPod(v1.Volume{Name: "data", VolumeSource: src})
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return pod
}

func claimSource(name string, readOnly bool) v1.VolumeSource {
	return v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: name, ReadOnly: readOnly}}
}

// localDir makes a directory standing for a local PV's disk, with a file.
func localDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSetupLocalPV(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		t.Run(map[bool]string{false: "read-write", true: "read-only claim"}[readOnly], func(t *testing.T) {
			disk := localDir(t)
			e := newEnv(t, boundClaim("data", "local-pv"), boundPV("local-pv", "data", localSource(disk)))
			pod := claimPod(claimSource("data", readOnly))
			want := map[string]string{"data": e.volumeDir("kubernetes.io~local-volume", "local-pv")}
			for range 2 { // idempotent: one bind mount however often Setup runs
				if diff := cmp.Diff(want, e.setup(pod)); diff != "" {
					t.Errorf("paths (-want +got):\n%s", diff)
				}
			}
			options := []string{"bind"}
			if readOnly {
				options = append(options, "ro")
			}
			wantMounts := []volumetesting.FakeMount{{Path: want["data"], Source: disk, FSType: "bind", Options: options}}
			if diff := cmp.Diff(wantMounts, e.mounter.Mounts()); diff != "" {
				t.Errorf("mounts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetupHostPathPV(t *testing.T) {
	host := filepath.Join(t.TempDir(), "made")
	typ := v1.HostPathDirectoryOrCreate
	e := newEnv(t, boundClaim("data", "host-pv"),
		boundPV("host-pv", "data", v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: host, Type: &typ}}))
	if diff := cmp.Diff(map[string]string{"data": host}, e.setup(claimPod(claimSource("data", false)))); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	if info, err := os.Stat(host); err != nil || !info.IsDir() {
		t.Errorf("the PV's type DirectoryOrCreate did not make %s: %v", host, err)
	}
	if got := e.mounter.Mounts(); len(got) != 0 {
		t.Errorf("a hostPath PV was mounted: %v", got)
	}
}

func TestSetupCSIPV(t *testing.T) {
	pvc := boundClaim("data", "csi-pv")
	pv := boundPV("csi-pv", "data", v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: "csi.example", VolumeHandle: "vol-1"}})
	e := newEnv(t, pvc, pv).withCSI()
	paths := e.setup(claimPod(claimSource("data", true)))
	want := filepath.Join(e.root, "pods", string(podUID), "volumes", "kubernetes.io~csi", "csi-pv", "mount")
	if paths["data"] != want {
		t.Errorf("path = %s, want %s", paths["data"], want)
	}
	calls := e.csi.Calls()
	if len(calls) != 1 {
		t.Fatalf("CSI calls = %+v, want one SetUp", calls)
	}
	got := calls[0]
	if got.Op != "SetUp" || got.PodUID != podUID || got.SpecName != "csi-pv" || !got.Volume.ReadOnly || got.Volume.Inline != nil {
		t.Errorf("SetUp call = %+v, want SetUp of csi-pv, read-only, not inline", got)
	}
	if got.Volume.PV == nil || got.Volume.PV.Name != "csi-pv" || got.Volume.PVC == nil || got.Volume.PVC.UID != claimUID {
		t.Errorf("SetUp got PV %v and PVC %v, want the bound pair", got.Volume.PV, got.Volume.PVC)
	}
}

func TestSetupInlineCSI(t *testing.T) {
	e := newEnv(t).withCSI()
	src := &v1.CSIVolumeSource{Driver: "inline.csi.example", VolumeAttributes: map[string]string{"size": "1Gi"}}
	e.setup(claimPod(v1.VolumeSource{CSI: src}))
	calls := e.csi.Calls()
	want := []volumetesting.CSICall{{Op: "SetUp", PodUID: podUID, SpecName: "data", Volume: csi.Volume{SpecName: "data", Inline: src}}}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("CSI calls (-want +got):\n%s", diff)
	}
}

func TestSetupCSIWithoutNodeSide(t *testing.T) {
	e := newEnv(t, boundClaim("data", "csi-pv"),
		boundPV("csi-pv", "data", v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: "csi.example", VolumeHandle: "vol-1"}}))
	_, err := e.m.Setup(e.ctx, claimPod(claimSource("data", false)))
	var unsupported *volume.UnsupportedError
	if !errors.As(err, &unsupported) || unsupported.Type != "csi" {
		t.Errorf("Setup error = %v, want UnsupportedError{csi}", err)
	}
}

func TestSetupClaimErrors(t *testing.T) {
	disk := "/nonexistent/disk1"
	unbound := boundClaim("data", "")
	unbound.Status.Phase = v1.ClaimPending
	noVolumeName := boundClaim("data", "")
	deleting := boundClaim("data", "local-pv")
	deleting.DeletionTimestamp = &metav1.Time{Time: epoch}
	deleting.Finalizers = nil
	otherClaim := boundPV("local-pv", "data", localSource(disk))
	otherClaim.Spec.ClaimRef.UID = "another-uid"
	unclaimed := boundPV("local-pv", "data", localSource(disk))
	unclaimed.Spec.ClaimRef = nil
	nfs := boundPV("nfs-pv", "data", v1.PersistentVolumeSource{NFS: &v1.NFSVolumeSource{Server: "nfs", Path: "/export"}})
	tests := []struct {
		name    string
		objects []runtime.Object
		want    string
		is      error
	}{{
		name: "claim not found",
		want: `volume "data": persistentvolumeclaim "data" not found`,
	}, {
		name:    "claim not bound",
		objects: []runtime.Object{unbound},
		want:    `volume "data": persistentvolumeclaim "data" is not bound`,
		is:      volume.ErrClaimNotBound,
	}, {
		name:    "claim bound without a volume name",
		objects: []runtime.Object{noVolumeName},
		want:    `volume "data": persistentvolumeclaim "data" is not bound: no spec.volumeName`,
		is:      volume.ErrClaimNotBound,
	}, {
		name:    "claim being deleted",
		objects: []runtime.Object{deleting, boundPV("local-pv", "data", localSource(disk))},
		want:    `volume "data": persistentvolumeclaim "data" is being deleted`,
		is:      volume.ErrClaimDeleting,
	}, {
		name:    "volume not found",
		objects: []runtime.Object{boundClaim("data", "local-pv")},
		want:    `volume "data": persistentvolume "local-pv" not found`,
	}, {
		name:    "volume bound to another claim",
		objects: []runtime.Object{boundClaim("data", "local-pv"), otherClaim},
		want:    `volume "data": persistentvolume "local-pv" is bound to claim shop/data (uid another-uid), not to persistentvolumeclaim "data" (uid ` + string(claimUID) + `)`,
	}, {
		name:    "volume not bound back",
		objects: []runtime.Object{boundClaim("data", "local-pv"), unclaimed},
		want:    `volume "data": persistentvolume "local-pv" of persistentvolumeclaim "data" is not bound to a claim yet`,
	}, {
		name:    "local path missing",
		objects: []runtime.Object{boundClaim("data", "local-pv"), boundPV("local-pv", "data", localSource(disk))},
		want:    `volume "data": local persistentvolume "local-pv": path /nonexistent/disk1 does not exist on this node`,
	}, {
		name:    "unsupported kind",
		objects: []runtime.Object{boundClaim("data", "nfs-pv"), nfs},
		want:    `volume "data": unsupported volume type nfs (persistentvolume "nfs-pv") on this node`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.objects...)
			_, err := e.m.Setup(e.ctx, claimPod(claimSource("data", false)))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Setup error = %v, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if got := e.mounter.Mounts(); len(got) != 0 {
				t.Errorf("mounted %v for a volume that failed", got)
			}
		})
	}
}

func TestSetupClaimNotFoundKeepsItsType(t *testing.T) {
	e := newEnv(t)
	_, err := e.m.Setup(e.ctx, claimPod(claimSource("data", false)))
	if !apierrors.IsNotFound(err) {
		t.Errorf("Setup error = %v, want one apierrors.IsNotFound sees", err)
	}
}

// TestSetupWaitsForTheClaim: a pod whose claim binds later is set up on
// the next Setup.
func TestSetupWaitsForTheClaim(t *testing.T) {
	disk := localDir(t)
	pending := boundClaim("data", "")
	pending.Status.Phase = v1.ClaimPending
	e := newEnv(t, pending)
	pod := claimPod(claimSource("data", false))
	if _, err := e.m.Setup(e.ctx, pod); !errors.Is(err, volume.ErrClaimNotBound) {
		t.Fatalf("Setup error = %v, want ErrClaimNotBound", err)
	}
	if _, err := e.client.CoreV1().PersistentVolumes().Create(e.ctx, boundPV("local-pv", "data", localSource(disk)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CoreV1().PersistentVolumeClaims("shop").Update(e.ctx, boundClaim("data", "local-pv"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.setup(pod)["data"]; got != e.volumeDir("kubernetes.io~local-volume", "local-pv") {
		t.Errorf("path after binding = %s", got)
	}
}

func TestSetupGenericEphemeral(t *testing.T) {
	disk := localDir(t)
	src := v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}
	// The ephemeral controller names the claim <pod>-<volume>.
	const claimName = "web-7d4b9c-x2x9z-data"
	owned := boundClaim(claimName, "local-pv")
	owned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "web-7d4b9c-x2x9z", UID: podUID, Controller: ptr(true)}}
	foreign := boundClaim(claimName, "local-pv")
	t.Run("owned by the pod", func(t *testing.T) {
		e := newEnv(t, owned, boundPV("local-pv", claimName, localSource(disk)))
		if got := e.setup(claimPod(src))["data"]; got != e.volumeDir("kubernetes.io~local-volume", "local-pv") {
			t.Errorf("path = %s", got)
		}
	})
	t.Run("not owned by the pod", func(t *testing.T) {
		e := newEnv(t, foreign, boundPV("local-pv", claimName, localSource(disk)))
		_, err := e.m.Setup(e.ctx, claimPod(src))
		want := `volume "data": PVC shop/web-7d4b9c-x2x9z-data was not created for pod shop/web-7d4b9c-x2x9z (pod is not owner)`
		if err == nil || err.Error() != want {
			t.Errorf("Setup error = %v, want %q", err, want)
		}
	})
	t.Run("not created yet", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.m.Setup(e.ctx, claimPod(src))
		if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), claimName) {
			t.Errorf("Setup error = %v, want claim %s not found", err, claimName)
		}
	})
}

func TestSetupVolumeModeMismatch(t *testing.T) {
	block := v1.PersistentVolumeBlock
	blockPV := boundPV("csi-pv", "data", v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: "csi.example", VolumeHandle: "vol-1"}})
	blockPV.Spec.VolumeMode = &block
	t.Run("block volume mounted", func(t *testing.T) {
		e := newEnv(t, boundClaim("data", "csi-pv"), blockPV).withCSI()
		_, err := e.m.Setup(e.ctx, claimPod(claimSource("data", false)))
		want := `volume "data": volume data has volumeMode Block, but is specified in volumeMounts`
		if err == nil || err.Error() != want {
			t.Errorf("Setup error = %v, want %q", err, want)
		}
		if calls := e.csi.Calls(); len(calls) != 0 {
			t.Errorf("CSI called for a refused volume: %+v", calls)
		}
	})
	t.Run("file system as a device", func(t *testing.T) {
		e := newEnv(t, boundClaim("data", "local-pv"), boundPV("local-pv", "data", localSource(localDir(t))))
		pod := claimPod(claimSource("data", false))
		c := &pod.Spec.Containers[0]
		c.VolumeMounts, c.VolumeDevices = nil, []v1.VolumeDevice{{Name: "data", DevicePath: "/dev/xvda"}}
		_, err := e.m.Setup(e.ctx, pod)
		want := `volume "data": volume data has volumeMode Filesystem, but is specified in volumeDevices`
		if err == nil || err.Error() != want {
			t.Errorf("Setup error = %v, want %q", err, want)
		}
	})
	t.Run("block volume as a device", func(t *testing.T) {
		e := newEnv(t, boundClaim("data", "csi-pv"), blockPV).withCSI()
		pod := claimPod(claimSource("data", false))
		c := &pod.Spec.Containers[0]
		c.VolumeMounts, c.VolumeDevices = nil, []v1.VolumeDevice{{Name: "data", DevicePath: "/dev/xvda"}}
		want := filepath.Join(e.root, "pods", string(podUID), "volumeDevices", "kubernetes.io~csi", "csi-pv")
		if got := e.setup(pod)["data"]; got != want {
			t.Errorf("path = %s, want %s", got, want)
		}
	})
}
