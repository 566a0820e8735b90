package csi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
)

func TestSetUpStagesOncePublishesPerPodAndUnstagesAfterLastUser(t *testing.T) {
	b := newBed(t, noAttach(storagev1.VolumeLifecyclePersistent), stageCaps...)
	vol := testPV("vol-1")
	podA, podB := testPod("uid-a"), testPod("uid-b")

	mounted, err := b.m.SetUp(b.ctx, podA, vol)
	if err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(b.root, "plugins/kubernetes.io/csi", testDriver,
		sha("vol-1"), "globalmount")
	targetA := filepath.Join(b.root, "pods/uid-a/volumes/kubernetes.io~csi/pv-vol-1/mount")
	if mounted.Path != targetA || mounted.Block || !mounted.ApplyFSGroup {
		t.Errorf("Mounted = %+v, want path %s and ApplyFSGroup (File policy)", mounted, targetA)
	}
	stage := b.drv.last(t, "NodeStageVolume")
	if stage.target != staging || stage.volume != "vol-1" || stage.context["color"] != "blue" || stage.context["csi.storage.k8s.io/pod.name"] != "" {
		t.Errorf("NodeStageVolume = %+v, want staging %s and the PV's attributes only", stage, staging)
	}
	pub := b.drv.last(t, "NodePublishVolume")
	if pub.target != targetA || pub.staging != staging || pub.context["csi.storage.k8s.io/pod.name"] != "pod-uid-a" || pub.context["color"] != "blue" {
		t.Errorf("NodePublishVolume = %+v", pub)
	}
	if diff := cmp.Diff(map[string]string{"volumeHandle": "vol-1", "driverName": testDriver}, readJSON(t, filepath.Join(filepath.Dir(staging), "vol_data.json"))); diff != "" {
		t.Errorf("staging vol_data.json (-want +got):\n%s", diff)
	}
	wantData := map[string]string{
		"specVolID": "pv-vol-1", "volumeHandle": "vol-1", "driverName": testDriver, "nodeName": testNode,
		"volumeLifecycleMode": "Persistent", "attachmentID": AttachmentName("vol-1", testDriver, testNode),
	}
	if diff := cmp.Diff(wantData, readJSON(t, filepath.Join(filepath.Dir(targetA), "vol_data.json"))); diff != "" {
		t.Errorf("pod vol_data.json (-want +got):\n%s", diff)
	}

	// Syncs again: nothing new for the driver. A second pod: publish only.
	if _, err := b.m.SetUp(b.ctx, podA, vol); err != nil {
		t.Fatal(err)
	}
	if _, err := b.m.SetUp(b.ctx, podB, vol); err != nil {
		t.Fatal(err)
	}
	want := []string{"NodeStageVolume", "NodePublishVolume", "NodePublishVolume"}
	if diff := cmp.Diff(want, b.drv.methods()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	if err := b.m.TearDown(b.ctx, podA.UID, vol.SpecName); err != nil {
		t.Fatal(err)
	}
	want = append(want, "NodeUnpublishVolume")
	if diff := cmp.Diff(want, b.drv.methods()); diff != "" {
		t.Errorf("calls after the first TearDown (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Dir(targetA)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod A's volume directory left: %v", err)
	}
	if _, err := os.Stat(staging); err != nil {
		t.Errorf("staging directory gone while pod B uses it: %v", err)
	}

	// A restart: a new Manager knows only the disk.
	m2 := b.manager(t)
	if err := m2.TearDown(b.ctx, podB.UID, vol.SpecName); err != nil {
		t.Fatal(err)
	}
	want = append(want, "NodeUnpublishVolume", "NodeUnstageVolume")
	if diff := cmp.Diff(want, b.drv.methods()); diff != "" {
		t.Errorf("calls after the last TearDown (-want +got):\n%s", diff)
	}
	if unstage := b.drv.last(t, "NodeUnstageVolume"); unstage.target != staging || unstage.volume != "vol-1" {
		t.Errorf("NodeUnstageVolume = %+v", unstage)
	}
	if _, err := os.Stat(filepath.Dir(staging)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging directory left: %v", err)
	}
	// Torn down: again is a no-op.
	if err := m2.TearDown(b.ctx, podB.UID, vol.SpecName); err != nil {
		t.Errorf("second TearDown: %v", err)
	}
	if got := len(b.drv.methods()); got != len(want) {
		t.Errorf("second TearDown called the driver: %v", b.drv.methods())
	}
}

func TestTearDownNeedsTheDriver(t *testing.T) {
	b := newBed(t, noAttach(), stageCaps...)
	vol := testPV("vol-1")
	if _, err := b.m.SetUp(b.ctx, testPod("uid-a"), vol); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{NodeName: testNode, Client: b.client, RootDir: b.root, Clock: b.m.cfg.Clock})
	if err != nil {
		t.Fatal(err)
	}
	err = m.TearDown(b.ctx, "uid-a", vol.SpecName)
	if !errors.Is(err, ErrDriverNotRegistered) || !strings.Contains(err.Error(), testDriver) {
		t.Errorf("TearDown before the driver registers: %v", err)
	}
}

func TestSetUpWithoutStaging(t *testing.T) {
	b := newBed(t, noAttach())
	vol := testPV("vol-1")
	vol.ReadOnly = true // the pod's claim says readOnly
	vol.PV.Spec.CSI.ReadOnly = false
	mounted, err := b.m.SetUp(b.ctx, testPod("uid-a"), vol)
	if err != nil {
		t.Fatal(err)
	}
	if pub := b.drv.last(t, "NodePublishVolume"); pub.staging != "" || !pub.ro {
		t.Errorf("NodePublishVolume staging path %q, read-only %v; want none, read-only", pub.staging, pub.ro)
	}
	if mounted.ApplyFSGroup {
		t.Error("fsGroup applied to a read-only volume")
	}
	if _, err := os.Stat(filepath.Join(b.root, "plugins")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging directory made for a driver that does not stage: %v", err)
	}
	if err := b.m.TearDown(b.ctx, "uid-a", "pv-vol-1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"NodePublishVolume", "NodeUnpublishVolume"}, b.drv.methods()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestPublishFailureIsNamedAndCleanedUpAfter(t *testing.T) {
	b := newBed(t, noAttach(), stageCaps...)
	b.drv.fail["NodePublishVolume"] = codes.Internal
	_, err := b.m.SetUp(b.ctx, testPod("uid-a"), testPV("vol-1"))
	if err == nil || !strings.Contains(err.Error(), `MountVolume.SetUp failed for volume "pv-vol-1"`) || !strings.Contains(err.Error(), "failed on purpose") {
		t.Fatalf("SetUp with a failing NodePublishVolume: %v", err)
	}
	// The pod is deleted before it ever ran: unstaged all the same.
	if err := b.m.TearDown(b.ctx, "uid-a", "pv-vol-1"); err != nil {
		t.Fatal(err)
	}
	want := []string{"NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume"}
	if diff := cmp.Diff(want, b.drv.methods()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if entries, _ := os.ReadDir(filepath.Join(b.root, "plugins/kubernetes.io/csi", testDriver)); len(entries) != 0 {
		t.Errorf("staging left: %v", entries)
	}
}

func TestHangingPublishDoesNotBlockSetUp(t *testing.T) {
	b := newBed(t, noAttach(), stageCaps...)
	b.m.cfg.SetUpWait = 100 * time.Millisecond
	release := make(chan struct{})
	b.drv.block["NodePublishVolume"] = release
	pod, vol := testPod("uid-a"), testPV("vol-1")
	_, err := b.m.SetUp(b.ctx, pod, vol)
	if !errors.Is(err, ErrInProgress) || !strings.Contains(err.Error(), "NodePublishVolume") {
		t.Fatalf("SetUp with a hanging NodePublishVolume: %v", err)
	}
	if err := b.m.TearDown(b.ctx, pod.UID, vol.SpecName); !errors.Is(err, ErrInProgress) {
		t.Errorf("TearDown while publishing: %v", err)
	}
	if _, err := b.m.SetUp(b.ctx, pod, vol); !errors.Is(err, ErrInProgress) {
		t.Errorf("SetUp again while hanging: %v", err)
	}
	close(release)
	b.m.cfg.SetUpWait = 5 * time.Second
	if _, err := b.m.SetUp(b.ctx, pod, vol); err != nil {
		t.Fatalf("SetUp after the driver answered: %v", err)
	}
	if diff := cmp.Diff([]string{"NodeStageVolume", "NodePublishVolume"}, b.drv.methods()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestAttachRequiredWaitsForTheAttachment(t *testing.T) {
	b := newBed(t, nil, stageCaps...)
	kicks := 0
	b.m.cfg.InUseChanged = func() { kicks++ }
	pod, vol := testPod("uid-a"), testPV("vol-1")
	_, err := b.m.SetUp(b.ctx, pod, vol)
	if !errors.Is(err, errNotAttached) || !strings.Contains(err.Error(), "VolumesInUse") {
		t.Fatalf("SetUp before the node reports the volume in use: %v", err)
	}
	if got, want := b.m.VolumesInUse(b.ctx), []v1.UniqueVolumeName{"kubernetes.io/csi/" + testDriver + "^vol-1"}; !cmp.Equal(got, want) {
		t.Errorf("VolumesInUse = %v, want %v", got, want)
	}
	if kicks != 1 {
		t.Errorf("InUseChanged called %d times, want once", kicks)
	}
	// The node status reports it in use; the controller attaches.
	node, _ := b.client.CoreV1().Nodes().Get(b.ctx, testNode, metav1.GetOptions{})
	node.Status.VolumesInUse = b.m.VolumesInUse(b.ctx)
	if _, err := b.client.CoreV1().Nodes().UpdateStatus(b.ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.m.SetUp(b.ctx, pod, vol); !errors.Is(err, errNotAttached) || !strings.Contains(err.Error(), "according to the node status") {
		t.Fatalf("SetUp before the controller attached: %v", err)
	}
	node, _ = b.client.CoreV1().Nodes().Get(b.ctx, testNode, metav1.GetOptions{})
	node.Status.VolumesAttached = []v1.AttachedVolume{{Name: UniqueName(testDriver, "vol-1")}}
	if _, err := b.client.CoreV1().Nodes().UpdateStatus(b.ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	va := &storagev1.VolumeAttachment{
		ObjectMeta: metav1.ObjectMeta{Name: AttachmentName("vol-1", testDriver, testNode)},
		Status:     storagev1.VolumeAttachmentStatus{Attached: false},
	}
	if _, err := b.client.StorageV1().VolumeAttachments().Create(b.ctx, va, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.m.SetUp(b.ctx, pod, vol); !errors.Is(err, errNotAttached) || !strings.Contains(err.Error(), va.Name) {
		t.Fatalf("SetUp before the attacher: %v", err)
	}
	va.Status = storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: map[string]string{"device": "/dev/fake"}}
	if _, err := b.client.StorageV1().VolumeAttachments().Update(b.ctx, va, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.m.SetUp(b.ctx, pod, vol); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"NodeStageVolume", "NodePublishVolume"} {
		if got := b.drv.last(t, method).publish["device"]; got != "/dev/fake" {
			t.Errorf("%s publish context device = %q", method, got)
		}
	}
	if err := b.m.TearDown(b.ctx, pod.UID, vol.SpecName); err != nil {
		t.Fatal(err)
	}
	if got := b.m.VolumesInUse(b.ctx); len(got) != 0 {
		t.Errorf("VolumesInUse after TearDown = %v", got)
	}
	if kicks != 2 {
		t.Errorf("InUseChanged called %d times, want twice (SetUp, TearDown)", kicks)
	}
}

func TestVolumesInUseFromDiskAfterRestart(t *testing.T) {
	b := newBed(t, nil, stageCaps...)
	// Published by an earlier berth: only the disk knows.
	dir := podVolumeDir(b.root, "uid-a", "pv-vol-1")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := writeVolData(dir, publishData("pv-vol-1", "vol-1", testDriver, testNode, storagev1.VolumeLifecyclePersistent)); err != nil {
		t.Fatal(err)
	}
	inline := podVolumeDir(b.root, "uid-a", "scratch")
	if err := os.MkdirAll(inline, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := writeVolData(inline, publishData("scratch", "csi-x", testDriver, testNode, storagev1.VolumeLifecycleEphemeral)); err != nil {
		t.Fatal(err)
	}
	if got, want := b.m.VolumesInUse(b.ctx), []v1.UniqueVolumeName{UniqueName(testDriver, "vol-1")}; !cmp.Equal(got, want) {
		t.Errorf("VolumesInUse = %v, want %v", got, want)
	}
	// A driver without attaching has none to report.
	if _, err := b.client.StorageV1().CSIDrivers().Create(b.ctx, noAttach(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := b.m.VolumesInUse(b.ctx); len(got) != 0 {
		t.Errorf("VolumesInUse without attachRequired = %v", got)
	}
}

func TestInlineVolume(t *testing.T) {
	b := newBed(t, noAttach(storagev1.VolumeLifecycleEphemeral), stageCaps...)
	pod := testPod("uid-a")
	vol := Volume{SpecName: "scratch", Inline: &v1.CSIVolumeSource{Driver: testDriver, VolumeAttributes: map[string]string{"size": "1Mi"}}}
	if _, err := b.m.SetUp(b.ctx, pod, vol); err != nil {
		t.Fatal(err)
	}
	pub := b.drv.last(t, "NodePublishVolume")
	if want := inlineHandle(pod.UID, "scratch"); pub.volume != want || !strings.HasPrefix(want, "csi-") || len(want) != 68 {
		t.Errorf("inline volume ID = %q, want %q", pub.volume, want)
	}
	if pub.staging != "" || pub.context["csi.storage.k8s.io/ephemeral"] != "true" || pub.context["size"] != "1Mi" {
		t.Errorf("NodePublishVolume = %+v", pub)
	}
	if got := readJSON(t, filepath.Join(podVolumeDir(b.root, pod.UID, "scratch"), "vol_data.json"))["volumeLifecycleMode"]; got != "Ephemeral" {
		t.Errorf("lifecycle mode = %q", got)
	}
	if err := b.m.TearDown(b.ctx, pod.UID, "scratch"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"NodePublishVolume", "NodeUnpublishVolume"}, b.drv.methods()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	// A driver that does not declare Ephemeral is refused, by name.
	b2 := newBed(t, noAttach(storagev1.VolumeLifecyclePersistent))
	_, err := b2.m.SetUp(b2.ctx, pod, vol)
	if err == nil || !strings.Contains(err.Error(), `volume mode "Ephemeral" not supported by driver `+testDriver) {
		t.Errorf("SetUp of an inline volume on a persistent-only driver: %v", err)
	}
}

func TestOnlineExpansionUpdatesTheClaim(t *testing.T) {
	b := newBed(t, noAttach(), stageCaps...)
	pvc := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "ns"},
		Status: v1.PersistentVolumeClaimStatus{
			Capacity:                  v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")},
			AllocatedResourceStatuses: map[v1.ResourceName]v1.ClaimResourceStatus{v1.ResourceStorage: v1.PersistentVolumeClaimNodeResizePending},
			Conditions:                []v1.PersistentVolumeClaimCondition{{Type: v1.PersistentVolumeClaimFileSystemResizePending, Status: v1.ConditionTrue}},
		},
	}
	if _, err := b.client.CoreV1().PersistentVolumeClaims("ns").Create(b.ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vol := testPV("vol-1")
	vol.PV.Spec.Capacity = v1.ResourceList{v1.ResourceStorage: resource.MustParse("2Gi")}
	vol.PVC = pvc
	if _, err := b.m.SetUp(b.ctx, testPod("uid-a"), vol); err != nil {
		t.Fatal(err)
	}
	if got := b.drv.last(t, "NodeExpandVolume"); got.target != publishPath(b.root, "uid-a", vol.SpecName) {
		t.Errorf("NodeExpandVolume = %+v", got)
	}
	got, _ := b.client.CoreV1().PersistentVolumeClaims("ns").Get(b.ctx, "data", metav1.GetOptions{})
	if c := got.Status.Capacity[v1.ResourceStorage]; c.String() != "2Gi" {
		t.Errorf("claim capacity = %s", c.String())
	}
	if len(got.Status.AllocatedResourceStatuses) != 0 || len(got.Status.Conditions) != 0 {
		t.Errorf("claim status after the resize: %+v", got.Status)
	}
}

// sha is the hex SHA-256 of s.
func sha(s string) string {
	return strings.TrimPrefix(inlineHandle("", s), "csi-")
}

func TestVolumeStatsAskTheDriverOncePerMinute(t *testing.T) {
	b := newBed(t, noAttach(), stageCaps...)
	pod := testPod("uid-a")
	pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{
		PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "claim-1"}}}}
	vol := testPV("vol-1")
	vol.PVC = &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "claim-1", Namespace: "ns"}}
	if _, err := b.m.SetUp(b.ctx, pod, vol); err != nil {
		t.Fatal(err)
	}
	got := b.m.VolumeStats(b.ctx)
	if len(got[pod.UID]) != 1 {
		t.Fatalf("VolumeStats = %+v", got)
	}
	s := got[pod.UID][0]
	if s.Name != "data" || s.PVCRef == nil || s.PVCRef.Name != "claim-1" || *s.CapacityBytes != 1000 || *s.InodesFree != 90 {
		t.Errorf("volume stats = %+v", s)
	}
	if call := b.drv.last(t, "NodeGetVolumeStats"); call.target != publishPath(b.root, pod.UID, vol.SpecName) || call.volume != "vol-1" {
		t.Errorf("NodeGetVolumeStats = %+v", call)
	}
	b.m.VolumeStats(b.ctx)
	n := 0
	for _, m := range b.drv.methods() {
		if m == "NodeGetVolumeStats" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("NodeGetVolumeStats calls = %d, want 1 within a minute", n)
	}
	if err := b.m.TearDown(b.ctx, pod.UID, vol.SpecName); err != nil {
		t.Fatal(err)
	}
	if got := b.m.VolumeStats(b.ctx); len(got) != 0 {
		t.Errorf("VolumeStats after TearDown = %+v", got)
	}
}

func TestVolumesInUseForgetsAPodThatNeverReachedTheDisk(t *testing.T) {
	b := newBed(t, nil, stageCaps...)
	clk := testingclock.NewFakeClock(time.Now())
	b.m.cfg.Clock = clk
	if _, err := b.m.SetUp(b.ctx, testPod("uid-a"), testPV("vol-1")); !errors.Is(err, errNotAttached) {
		t.Fatalf("SetUp: %v", err)
	}
	if got := b.m.VolumesInUse(b.ctx); len(got) != 1 {
		t.Fatalf("VolumesInUse = %v, want the volume", got)
	}
	// The pod is deleted while waiting for the attachment: nothing on disk,
	// no TearDown, no SetUp any more.
	clk.Step(inUseTTL + time.Second)
	if got := b.m.VolumesInUse(b.ctx); len(got) != 0 {
		t.Errorf("VolumesInUse after %s without SetUp = %v", inUseTTL, got)
	}
}
