package testing

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/berthnode/berth/kubelet/csi"
	"github.com/berthnode/berth/kubelet/volume"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// CSICall is one call a FakeCSI received.
type CSICall struct {
	// Op is "SetUp" or "TearDown".
	Op string
	// PodUID is the pod's UID.
	PodUID types.UID
	// SpecName names the volume below the pod's directory.
	SpecName string
	// Volume is what SetUp was given; zero for TearDown.
	Volume csi.Volume
	// MountsAtCall is how many mounts the FakeCSI's Mounter held when the
	// call came, so that tests can tell what was unmounted before it.
	MountsAtCall int
}

// FakeCSI is a volume.CSI that publishes volumes where the kubelet's CSI
// node side does, as plain directories (a file for a block volume), and
// keeps what it published. It is safe for concurrent use.
type FakeCSI struct {
	root    string
	mounter *FakeMounter

	mu           sync.Mutex
	calls        []CSICall
	published    map[string]bool
	setUpErr     error
	tearDownErr  error
	applyFSGroup bool
}

var _ volume.CSI = &FakeCSI{}

// NewFakeCSI returns a FakeCSI publishing below the kubelet root
// directory root. mounter, when not nil, is the one the Manager uses:
// each call records how many mounts it held.
func NewFakeCSI(root string, mounter *FakeMounter) *FakeCSI {
	return &FakeCSI{root: root, mounter: mounter, published: map[string]bool{}}
}

// SetUp publishes vol at pods/<uid>/volumes/kubernetes.io~csi/<spec>/mount,
// or for a PV with volumeMode Block as the file
// pods/<uid>/volumeDevices/kubernetes.io~csi/<spec>.
func (f *FakeCSI) SetUp(_ context.Context, pod *v1.Pod, vol csi.Volume) (csi.Mounted, error) {
	f.record(CSICall{Op: "SetUp", PodUID: pod.UID, SpecName: vol.SpecName, Volume: vol})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setUpErr != nil {
		return csi.Mounted{}, fmt.Errorf("publish CSI volume %s: %w", vol.SpecName, f.setUpErr)
	}
	block := vol.PV != nil && vol.PV.Spec.VolumeMode != nil && *vol.PV.Spec.VolumeMode == v1.PersistentVolumeBlock
	path := filepath.Join(f.root, "pods", string(pod.UID), "volumes", "kubernetes.io~csi", vol.SpecName, "mount")
	if block {
		path = filepath.Join(f.root, "pods", string(pod.UID), "volumeDevices", "kubernetes.io~csi", vol.SpecName)
	}
	if err := f.makePath(path, block); err != nil {
		return csi.Mounted{}, err
	}
	f.published[string(pod.UID)+"/"+vol.SpecName] = true
	return csi.Mounted{Path: path, Block: block, ApplyFSGroup: f.applyFSGroup}, nil
}

func (f *FakeCSI) makePath(path string, block bool) error {
	if !block {
		return os.MkdirAll(path, 0o750)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	return os.WriteFile(path, nil, 0o600)
}

// TearDown removes what SetUp published for the volume.
func (f *FakeCSI) TearDown(_ context.Context, podUID types.UID, specName string) error {
	f.record(CSICall{Op: "TearDown", PodUID: podUID, SpecName: specName})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tearDownErr != nil {
		return fmt.Errorf("unpublish CSI volume %s: %w", specName, f.tearDownErr)
	}
	for _, p := range []string{
		filepath.Join(f.root, "pods", string(podUID), "volumes", "kubernetes.io~csi", specName),
		filepath.Join(f.root, "pods", string(podUID), "volumeDevices", "kubernetes.io~csi", specName),
	} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	delete(f.published, string(podUID)+"/"+specName)
	return nil
}

func (f *FakeCSI) record(c CSICall) {
	if f.mounter != nil {
		c.MountsAtCall = len(f.mounter.Mounts())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

// Calls returns the calls received so far, in order.
func (f *FakeCSI) Calls() []CSICall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Published returns "<pod uid>/<spec name>" of every volume published and
// not torn down, sorted.
func (f *FakeCSI) Published() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.published {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// FailSetUp makes later SetUp calls fail with err; nil stops that.
func (f *FakeCSI) FailSetUp(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setUpErr = err
}

// FailTearDown makes later TearDown calls fail with err, as a driver not
// registered yet after a restart does; nil stops that.
func (f *FakeCSI) FailTearDown(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tearDownErr = err
}

// SetApplyFSGroup sets what later SetUp calls answer in
// Mounted.ApplyFSGroup.
func (f *FakeCSI) SetApplyFSGroup(apply bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyFSGroup = apply
}
