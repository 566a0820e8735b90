package csi

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

func TestBlockVolume(t *testing.T) {
	b := newBed(t, noAttach(storagev1.VolumeLifecyclePersistent), stageCaps...)
	vol := testPV("vol-b")
	mode := v1.PersistentVolumeBlock
	vol.PV.Spec.VolumeMode = &mode
	podA, podB := testPod("uid-a"), testPod("uid-b")

	mounted, err := b.m.SetUp(b.ctx, podA, vol)
	if err != nil {
		t.Fatal(err)
	}
	devices := filepath.Join(b.root, "plugins/kubernetes.io/csi/volumeDevices")
	staging := filepath.Join(devices, "staging/pv-vol-b")
	targetA := filepath.Join(devices, "publish/pv-vol-b/uid-a")
	if mounted.Path != targetA || !mounted.Block || mounted.ApplyFSGroup {
		t.Errorf("Mounted = %+v, want block device %s without fsGroup", mounted, targetA)
	}
	stage, pub := b.drv.last(t, "NodeStageVolume"), b.drv.last(t, "NodePublishVolume")
	if stage.target != staging || !stage.block || pub.target != targetA || pub.staging != staging || !pub.block {
		t.Errorf("stage %+v, publish %+v; want block capability, staging %s, target %s", stage, pub, staging, targetA)
	}
	wantData := map[string]string{
		"specVolID": "pv-vol-b", "volumeHandle": "vol-b", "driverName": testDriver, "nodeName": testNode,
		"attachmentID": AttachmentName("vol-b", testDriver, testNode),
	}
	if diff := cmp.Diff(wantData, readJSON(t, filepath.Join(devices, "pv-vol-b/data/vol_data.json"))); diff != "" {
		t.Errorf("vol_data.json (-want +got):\n%s", diff)
	}
	link := filepath.Join(b.root, "pods/uid-a/volumeDevices/kubernetes.io~csi/pv-vol-b")
	if got, err := os.Readlink(link); err != nil || got != targetA {
		t.Errorf("pod device link -> %q (%v), want %s", got, err, targetA)
	}
	if _, err := b.m.SetUp(b.ctx, podB, vol); err != nil {
		t.Fatal(err)
	}

	if err := b.m.TearDown(b.ctx, podA.UID, vol.SpecName); err != nil {
		t.Fatal(err)
	}
	// A restart between the two pods' teardowns.
	if err := b.manager(t).TearDown(b.ctx, podB.UID, vol.SpecName); err != nil {
		t.Fatal(err)
	}
	want := []string{"NodeStageVolume", "NodePublishVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume"}
	if diff := cmp.Diff(want, b.drv.methods()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if entries, err := os.ReadDir(devices); err != nil || len(entries) != 0 {
		for _, e := range entries {
			t.Errorf("left below volumeDevices: %s", e.Name())
		}
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod device link left: %v", err)
	}
}
