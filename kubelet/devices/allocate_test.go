package devices

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	testclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/kubelet/podruntime"
)

// registered starts a manager in dir with a fake plugin of devices ids.
func registered(t *testing.T, dir string, clk *testclock.FakeClock, opts *pluginapi.DevicePluginOptions, ids ...string) (*running, *fakePlugin) {
	t.Helper()
	m := startManager(t, dir, clk)
	p := newFakePlugin(t, dir, "fake.sock", testResource, ids...)
	if opts != nil {
		p.options = opts
	}
	p.start()
	if err := p.register(m.SocketPath(), nil); err != nil {
		t.Fatalf("Register: %v", err)
	}
	waitCounts(t, m.Manager, int64(len(ids)), int64(len(ids)))
	return m, p
}

func TestAllocateReleaseAndNotEnough(t *testing.T) {
	dir := shortDir(t)
	m, p := registered(t, dir, testclock.NewFakeClock(time.Now()), &pluginapi.DevicePluginOptions{PreStartRequired: true}, "Dev-1", "Dev-2")
	_, ctx := ktesting.NewTestContext(t)

	a := devicePod("a", "a", 1)
	if err := m.Admit(ctx, a); err != nil {
		t.Fatalf("Admit a: %v", err)
	}
	got, err := m.ContainerDevices(ctx, a, &a.Spec.Containers[0])
	if err != nil {
		t.Fatalf("ContainerDevices: %v", err)
	}
	want := podruntime.ContainerDevices{
		Devices:     []*runtimeapi.Device{{ContainerPath: "/dev/Dev-1", HostPath: "/dev/null", Permissions: "rw"}},
		Mounts:      []*runtimeapi.Mount{{ContainerPath: "/tmp/Dev-1", HostPath: "/tmp/Dev-1"}},
		Envs:        []*runtimeapi.KeyValue{{Key: "FAKE_DEVICES", Value: []byte("Dev-1")}},
		Annotations: map[string]string{"fake.example.com/devices": "Dev-1"},
		CDIDevices:  []*runtimeapi.CDIDevice{{Name: "example.com/fake=Dev-1"}},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("container devices (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"Dev-1"}}, p.preStarts); diff != "" {
		t.Errorf("PreStartContainer calls (-want +got):\n%s", diff)
	}

	b := devicePod("b", "b", 2)
	err = m.Admit(ctx, b)
	if !errors.Is(err, ErrAllocate) || !strings.Contains(err.Error(), "requested number of devices unavailable for example.com/resource. Requested: 2, Available: 1") {
		t.Fatalf("Admit b with one device free: got %v, want ErrAllocate with kubelet's message", err)
	}
	if got := m.PodDevices("b"); len(got) != 0 {
		t.Errorf("a refused pod keeps devices: %v", got)
	}
	m.Release(ctx, "a")
	if err := m.Admit(ctx, b); err != nil {
		t.Fatalf("Admit b after a was released: %v", err)
	}
	if diff := cmp.Diff(map[string]map[string][]string{"c": {testResource: {"Dev-1", "Dev-2"}}}, m.PodDevices("b")); diff != "" {
		t.Errorf("devices of b (-want +got):\n%s", diff)
	}
	// Capacity and allocatable count devices, not free ones.
	if c, a := counts(m.Manager); c != 2 || a != 2 {
		t.Errorf("capacity, allocatable = %d, %d; want 2, 2", c, a)
	}
}

func TestAllocateSkipsUnhealthyAndUsesPreference(t *testing.T) {
	dir := shortDir(t)
	m, p := registered(t, dir, testclock.NewFakeClock(time.Now()), &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, "Dev-1", "Dev-2", "Dev-3")
	_, ctx := ktesting.NewTestContext(t)
	p.preferred = []string{"Dev-3", "Dev-1"}
	p.setHealth("Dev-1", pluginapi.Unhealthy)
	waitCounts(t, m.Manager, 3, 2)
	pod := devicePod("a", "a", 1)
	if err := m.Admit(ctx, pod); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if diff := cmp.Diff([]string{"Dev-3"}, m.PodDevices("a")["c"][testResource]); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
	p.setHealth("Dev-2", pluginapi.Unhealthy)
	p.setHealth("Dev-3", pluginapi.Unhealthy)
	waitCounts(t, m.Manager, 3, 0)
	err := m.Admit(ctx, devicePod("b", "b", 1))
	if !errors.Is(err, ErrAllocate) || !strings.Contains(err.Error(), "no healthy devices present; cannot allocate unhealthy devices example.com/resource") {
		t.Fatalf("Admit with only unhealthy devices: got %v", err)
	}
}

// TestInitContainerDevicesReused: an init container's devices go to the
// app container after it, so a pod whose init and app containers each ask
// for every device fits.
func TestInitContainerDevicesReused(t *testing.T) {
	dir := shortDir(t)
	m, _ := registered(t, dir, testclock.NewFakeClock(time.Now()), nil, "Dev-1", "Dev-2")
	_, ctx := ktesting.NewTestContext(t)
	pod := devicePod("a", "a", 2)
	pod.Spec.InitContainers = []v1.Container{{Name: "init", Resources: v1.ResourceRequirements{
		Limits: v1.ResourceList{testResource: *resource.NewQuantity(2, resource.DecimalSI)},
	}}}
	if err := m.Admit(ctx, pod); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	want := map[string]map[string][]string{"init": {testResource: {"Dev-1", "Dev-2"}}, "c": {testResource: {"Dev-1", "Dev-2"}}}
	if diff := cmp.Diff(want, m.PodDevices("a")); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
	// A second admission (as after a restart) keeps them.
	if err := m.Admit(ctx, pod); err != nil {
		t.Fatalf("second Admit: %v", err)
	}
}

func TestUnknownResourceIsNotOurs(t *testing.T) {
	dir := shortDir(t)
	m, _ := registered(t, dir, testclock.NewFakeClock(time.Now()), nil, "Dev-1")
	_, ctx := ktesting.NewTestContext(t)
	pod := devicePod("a", "a", 1)
	pod.Spec.Containers[0].Resources.Limits = v1.ResourceList{"example.com/cluster-level": resource.MustParse("5")}
	if err := m.Admit(ctx, pod); err != nil {
		t.Fatalf("Admit of a cluster-level resource: %v", err)
	}
	if got, err := m.ContainerDevices(ctx, pod, &pod.Spec.Containers[0]); err != nil || got.Mounts != nil {
		t.Errorf("ContainerDevices = %v, %v; want nothing", got, err)
	}
}

// TestCheckpointRestore: a restarted manager keeps the assignments before
// the plugin registers again and after; no other pod gets the devices;
// Retain frees those of pods that are gone.
func TestCheckpointRestore(t *testing.T) {
	dir := shortDir(t)
	clk := testclock.NewFakeClock(time.Now())
	m, p := registered(t, dir, clk, nil, "Dev-1", "Dev-2")
	_, ctx := ktesting.NewTestContext(t)
	if err := m.Admit(ctx, devicePod("a", "a", 1)); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	m.stop()
	p.stop()

	m2 := startManager(t, dir, clk)
	wantA := map[string]map[string][]string{"c": {testResource: {"Dev-1"}}}
	if diff := cmp.Diff(wantA, m2.PodDevices("a")); diff != "" {
		t.Errorf("restored devices of a (-want +got):\n%s", diff)
	}
	if c, a := counts(m2.Manager); c != 0 || a != 0 {
		t.Errorf("before the plugin registers: capacity, allocatable = %d, %d; want 0, 0", c, a)
	}
	// The restored pod is admitted again (berth's restart) and keeps its
	// device, with the plugin not back yet.
	if err := m2.Admit(ctx, devicePod("a", "a", 1)); err != nil {
		t.Fatalf("Admit of the restored pod: %v", err)
	}
	if got, err := m2.ContainerDevices(ctx, devicePod("a", "a", 1), &v1.Container{Name: "c"}); err != nil || len(got.Mounts) != 1 || got.Mounts[0].HostPath != "/tmp/Dev-1" {
		t.Errorf("restored container devices = %v, %v; want the mount of Dev-1", got, err)
	}
	p.start()
	if err := p.register(m2.SocketPath(), nil); err != nil {
		t.Fatalf("Register again: %v", err)
	}
	waitCounts(t, m2.Manager, 2, 2)
	if err := m2.Admit(ctx, devicePod("b", "b", 2)); !errors.Is(err, ErrAllocate) {
		t.Fatalf("Admit b asking for both devices: got %v, want ErrAllocate (Dev-1 is a's)", err)
	}
	m2.Retain(ctx, map[types.UID]bool{"b": true})
	if got := m2.PodDevices("a"); len(got) != 0 {
		t.Errorf("Retain kept the devices of a gone pod: %v", got)
	}
	if err := m2.Admit(ctx, devicePod("b", "b", 2)); err != nil {
		t.Fatalf("Admit b after Retain: %v", err)
	}
}

// TestPluginRestartKeepsAllocations: when the plugin goes away its devices
// are unhealthy at once and its capacity goes after the grace period; a
// restarted plugin brings them back, and the assignments stay.
func TestPluginRestartKeepsAllocations(t *testing.T) {
	dir := shortDir(t)
	clk := testclock.NewFakeClock(time.Now())
	m, p := registered(t, dir, clk, nil, "Dev-1", "Dev-2")
	_, ctx := ktesting.NewTestContext(t)
	if err := m.Admit(ctx, devicePod("a", "a", 1)); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	p.stop()
	waitCounts(t, m.Manager, 2, 0)
	clk.Step(DefaultDisconnectGrace + time.Second)
	waitCounts(t, m.Manager, 0, 0)
	err := m.Admit(ctx, devicePod("b", "b", 1))
	if !errors.Is(err, ErrAllocate) || !strings.Contains(err.Error(), "cannot allocate unregistered device example.com/resource") {
		t.Fatalf("Admit without the plugin: got %v", err)
	}

	p.start()
	if err := p.register(m.SocketPath(), nil); err != nil {
		t.Fatalf("Register again: %v", err)
	}
	waitCounts(t, m.Manager, 2, 2)
	if diff := cmp.Diff([]string{"Dev-1"}, m.PodDevices("a")["c"][testResource]); diff != "" {
		t.Errorf("devices of a after the plugin restart (-want +got):\n%s", diff)
	}
	if err := m.Admit(ctx, devicePod("b", "b", 1)); err != nil {
		t.Fatalf("Admit b: %v", err)
	}
	if diff := cmp.Diff([]string{"Dev-2"}, m.PodDevices("b")["c"][testResource]); diff != "" {
		t.Errorf("devices of b (-want +got):\n%s", diff)
	}
}

// TestCheckpointMissing: a new node's plugin directory is empty; once a
// manager ran, the next one finds its checkpoint.
func TestCheckpointMissing(t *testing.T) {
	dir := shortDir(t)
	m := startManager(t, dir, testclock.NewFakeClock(time.Now()))
	if !m.CheckpointMissing() {
		t.Error("empty directory: CheckpointMissing false")
	}
	m.stop()
	m2 := startManager(t, dir, testclock.NewFakeClock(time.Now()))
	if m2.CheckpointMissing() {
		t.Error("after a run: CheckpointMissing true")
	}
}
