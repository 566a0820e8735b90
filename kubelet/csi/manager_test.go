package csi

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/kubelet/plugins"
)

const (
	testNode   = "node-1"
	testDriver = "fake.csi.example.com"
)

var stageCaps = []csipb.NodeServiceCapability_RPC_Type{
	csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
	csipb.NodeServiceCapability_RPC_GET_VOLUME_STATS,
	csipb.NodeServiceCapability_RPC_EXPAND_VOLUME,
}

// bed is a Manager over a fake clientset, a temporary root and a fake
// driver.
type bed struct {
	ctx    context.Context
	client *fake.Clientset
	root   string
	drv    *fakeDriver
	m      *Manager
}

func newBed(t *testing.T, csiDriver *storagev1.CSIDriver, caps ...csipb.NodeServiceCapability_RPC_Type) *bed {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	objs := []runtime.Object{&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, UID: "node-uid"}}}
	if csiDriver != nil {
		objs = append(objs, csiDriver)
	}
	b := &bed{ctx: ctx, client: fake.NewClientset(objs...), root: t.TempDir(), drv: startDriver(t, caps...)}
	b.m = b.manager(t)
	return b
}

// manager returns a new Manager on the bed, as after a restart, with the
// driver registered.
func (b *bed) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Config{NodeName: testNode, Client: b.client, RootDir: b.root, Clock: clock.RealClock{}, SetUpWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := plugins.Plugin{Type: plugins.TypeCSI, Name: testDriver, Endpoint: b.drv.socket, Versions: []string{"1.0.0"}}
	if err := m.Validate(p); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(b.ctx, p); err != nil {
		t.Fatal(err)
	}
	return m
}

func noAttach(modes ...storagev1.VolumeLifecycleMode) *storagev1.CSIDriver {
	return &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: testDriver},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       ptr.To(false),
			PodInfoOnMount:       ptr.To(true),
			FSGroupPolicy:        ptr.To(storagev1.FileFSGroupPolicy),
			VolumeLifecycleModes: modes,
		},
	}
}

func testPod(uid string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-" + uid, Namespace: "ns", UID: types.UID(uid)},
		Spec: v1.PodSpec{
			ServiceAccountName: "sa",
			SecurityContext:    &v1.PodSecurityContext{FSGroup: ptr.To[int64](2000)},
		},
	}
}

func testPV(handle string) Volume {
	return Volume{
		SpecName: "pv-" + handle,
		PV: &v1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv-" + handle},
			Spec: v1.PersistentVolumeSpec{
				AccessModes:  []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
				MountOptions: []string{"noatime"},
				PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{
					Driver: testDriver, VolumeHandle: handle, FSType: "ext4",
					VolumeAttributes: map[string]string{"color": "blue"},
				}},
			},
		},
	}
}

func readJSON(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRegisterWritesCSINodeAndNode(t *testing.T) {
	b := newBed(t, nil, stageCaps...)
	cn, err := b.client.StorageV1().CSINodes().Get(b.ctx, testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []storagev1.CSINodeDriver{{
		Name: testDriver, NodeID: "node-id-1", TopologyKeys: []string{"topology.fake.csi/zone"},
		Allocatable: &storagev1.VolumeNodeResources{Count: ptr.To[int32](7)},
	}}
	if diff := cmp.Diff(want, cn.Spec.Drivers); diff != "" {
		t.Errorf("CSINode drivers (-want +got):\n%s", diff)
	}
	if len(cn.OwnerReferences) != 1 || cn.OwnerReferences[0].UID != "node-uid" || cn.OwnerReferences[0].Kind != "Node" {
		t.Errorf("CSINode owner references: %+v", cn.OwnerReferences)
	}
	node, _ := b.client.CoreV1().Nodes().Get(b.ctx, testNode, metav1.GetOptions{})
	if got := node.Annotations[NodeIDAnnotation]; got != `{"fake.csi.example.com":"node-id-1"}` {
		t.Errorf("node ID annotation = %q", got)
	}
	if got := node.Labels["topology.fake.csi/zone"]; got != "z1" {
		t.Errorf("topology label = %q", got)
	}

	b.m.Deregister(b.ctx, plugins.Plugin{Type: plugins.TypeCSI, Name: testDriver, Endpoint: b.drv.socket})
	cn, _ = b.client.StorageV1().CSINodes().Get(b.ctx, testNode, metav1.GetOptions{})
	if len(cn.Spec.Drivers) != 0 {
		t.Errorf("CSINode drivers after Deregister: %+v", cn.Spec.Drivers)
	}
	node, _ = b.client.CoreV1().Nodes().Get(b.ctx, testNode, metav1.GetOptions{})
	if _, ok := node.Annotations[NodeIDAnnotation]; ok {
		t.Errorf("node ID annotation left after Deregister: %v", node.Annotations)
	}
	_, err = b.m.SetUp(b.ctx, testPod("p1"), testPV("h1"))
	if !errors.Is(err, ErrDriverNotRegistered) || !strings.Contains(err.Error(), "driver name "+testDriver+" not found in the list of registered CSI drivers") {
		t.Errorf("SetUp after Deregister: %v", err)
	}
}

func TestValidateRefusesUnsupportedVersions(t *testing.T) {
	m := &Manager{}
	for _, versions := range [][]string{nil, {"0.3.0"}, {"2.0.0"}} {
		err := m.Validate(plugins.Plugin{Type: plugins.TypeCSI, Name: testDriver, Versions: versions})
		if err == nil {
			t.Errorf("versions %q: no error", versions)
		}
	}
	if err := m.Validate(plugins.Plugin{Type: plugins.TypeCSI, Name: testDriver, Versions: []string{"0.3.0", "v1.5.0"}}); err != nil {
		t.Errorf("1.x: %v", err)
	}
}

func TestCSINodeOfAnotherNodeIsReplaced(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	stale := &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{
		Name:            testNode,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: testNode, UID: "old-node-uid"}},
	}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: "gone.example.com", NodeID: "x"}}}}
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, UID: "node-uid"}}, stale)
	m, err := New(Config{NodeName: testNode, Client: client, RootDir: t.TempDir(), Clock: clock.RealClock{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.initCSINode(ctx); err != nil {
		t.Fatal(err)
	}
	cn, err := client.StorageV1().CSINodes().Get(ctx, testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cn.OwnerReferences) != 1 || cn.OwnerReferences[0].UID != "node-uid" || len(cn.Spec.Drivers) != 0 {
		t.Errorf("CSINode = %+v, want a fresh one owned by the current Node", cn)
	}
}
