package pods

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/kubelet/podruntime"
)

// fakeDevices admits every pod but those it is told to refuse, and gives
// each container one mount, env and device.
type fakeDevices struct {
	mu       sync.Mutex
	refuse   map[string]error
	admitted []string
	released []types.UID
	retained []map[types.UID]bool
}

func (f *fakeDevices) Admit(_ context.Context, pod *v1.Pod) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.refuse[pod.Name]; err != nil {
		return err
	}
	f.admitted = append(f.admitted, pod.Name)
	return nil
}

func (f *fakeDevices) Release(_ context.Context, uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, uid)
}

func (f *fakeDevices) Retain(_ context.Context, active map[types.UID]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retained = append(f.retained, active)
}

func (f *fakeDevices) wasReleased(uid types.UID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.released {
		if u == uid {
			return true
		}
	}
	return false
}

func (f *fakeDevices) ContainerDevices(_ context.Context, pod *v1.Pod, c *v1.Container) (podruntime.ContainerDevices, error) {
	return podruntime.ContainerDevices{
		Devices:     []*runtimeapi.Device{{ContainerPath: "/dev/fake0", HostPath: "/dev/null", Permissions: "rw"}},
		Mounts:      []*runtimeapi.Mount{{ContainerPath: "/tmp/Dev-1", HostPath: "/tmp/Dev-1"}},
		Envs:        []*runtimeapi.KeyValue{{Key: "DEVICE", Value: []byte("Dev-1")}, {Key: "FROM_SPEC", Value: []byte("device")}},
		Annotations: map[string]string{"fake.example.com/device": "Dev-1"},
		CDIDevices:  []*runtimeapi.CDIDevice{{Name: "example.com/fake=Dev-1"}},
	}, nil
}

// TestDevicesAdmissionAndRelease: a pod whose devices cannot be allocated
// is rejected with kubelet's reason and message; an admitted pod's
// container gets its devices, mounts, env (the spec's own winning),
// annotations and CDI devices; its devices are released when it ends.
func TestDevicesAdmissionAndRelease(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	devs := &fakeDevices{refuse: map[string]error{
		"greedy": errors.New("requested number of devices unavailable for example.com/resource. Requested: 3, Available: 2"),
	}}
	h.cfg.Devices = devs
	h.start()

	h.create(testPod("greedy", ctr("app-g")))
	h.waitFor("greedy rejected", func() bool { return h.phase("greedy") == v1.PodFailed })
	const msg = "Allocate failed due to requested number of devices unavailable for example.com/resource. Requested: 3, Available: 2, which is unexpected"
	if st := h.pod("greedy").Status; st.Reason != "UnexpectedAdmissionError" || st.Message != rejectedPrefix+msg {
		t.Errorf("greedy: reason %q message %q", st.Reason, st.Message)
	}
	if !h.events.Has("greedy", "UnexpectedAdmissionError", msg) || h.sandboxesOf("greedy") != 0 {
		t.Error("greedy: no event, or it ran")
	}

	pod := testPod("dev", ctr("app"))
	pod.Spec.Containers[0].Env = []v1.EnvVar{{Name: "FROM_SPEC", Value: "spec"}}
	h.create(pod)
	h.waitFor("dev running", func() bool { return h.running("dev", "app") })
	cfg := h.rt.ContainerConfig("app")
	env := map[string]string{}
	for _, kv := range cfg.Envs {
		env[kv.Key] = string(kv.Value) // later entries win, as in the runtime
	}
	if env["DEVICE"] != "Dev-1" || env["FROM_SPEC"] != "spec" {
		t.Errorf("env %v: want DEVICE=Dev-1 and the spec's FROM_SPEC", env)
	}
	var mounted bool
	for _, m := range cfg.Mounts {
		mounted = mounted || (m.ContainerPath == "/tmp/Dev-1" && m.HostPath == "/tmp/Dev-1")
	}
	if !mounted || len(cfg.Devices) != 1 || cfg.Devices[0].ContainerPath != "/dev/fake0" ||
		cfg.Annotations["fake.example.com/device"] != "Dev-1" || len(cfg.CDIDevices) != 1 {
		t.Errorf("container config lacks the devices: mounts %v devices %v annotations %v cdi %v", cfg.Mounts, cfg.Devices, cfg.Annotations, cfg.CDIDevices)
	}

	// The periodic pass keeps the running pod's devices, not the
	// rejected pod's.
	lastRetained := func() map[types.UID]bool {
		devs.mu.Lock()
		defer devs.mu.Unlock()
		if len(devs.retained) == 0 {
			return nil
		}
		return devs.retained[len(devs.retained)-1]
	}
	h.clock.Step(2 * time.Second)
	h.waitFor("a retain pass with dev", func() bool { return lastRetained()[pod.UID] })
	if lastRetained()[h.pod("greedy").UID] {
		t.Error("the rejected pod is kept active")
	}

	h.deletePod("dev", 0)
	h.waitFor("dev's devices released", func() bool { return devs.wasReleased(pod.UID) })
	h.clock.Step(2 * time.Second)
	h.waitFor("a retain pass without dev", func() bool { r := lastRetained(); return r != nil && !r[pod.UID] })
}
