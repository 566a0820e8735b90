package pods

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
)

// recordingRuntime is the CRI fake that also keeps the configurations it was
// given and the order of lifecycle calls, and can fail container starts the
// way containerd does (the container exits with 128).
type recordingRuntime struct {
	*critest.FakeRuntimeService
	mu         sync.Mutex
	sandboxes  []*runtimeapi.PodSandboxConfig
	containers map[string]*runtimeapi.ContainerConfig
	stops      map[string]int64
	order      []string
	failStart  map[string]error
	failStop   map[string]error
	// exec answers ExecSync (nil: exit 0 with no output).
	exec  func(id string, cmd []string, timeout time.Duration) ([]byte, []byte, error)
	execs []execCall
	// sandboxGate, when set, holds RunPodSandbox until it is closed.
	sandboxGate chan struct{}
	// updates are the UpdateContainerResources calls (resize_test.go).
	updates []resourceUpdate
}

// execCall is one ExecSync the runtime was asked for.
type execCall struct {
	ID      string
	Cmd     string
	Timeout time.Duration
}

func newRecordingRuntime() *recordingRuntime {
	return &recordingRuntime{
		FakeRuntimeService: critest.NewFakeRuntimeService(),
		containers:         map[string]*runtimeapi.ContainerConfig{},
		stops:              map[string]int64{},
		failStart:          map[string]error{},
		failStop:           map[string]error{},
	}
}

func (r *recordingRuntime) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.order = append(r.order, s)
}

func (r *recordingRuntime) Order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

func (r *recordingRuntime) ResetOrder() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.order = nil
}

func (r *recordingRuntime) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	r.mu.Lock()
	gate := r.sandboxGate
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	id, err := r.FakeRuntimeService.RunPodSandbox(ctx, cfg, handler)
	if err == nil {
		r.mu.Lock()
		r.sandboxes = append(r.sandboxes, cfg)
		r.mu.Unlock()
		r.note("runSandbox")
	}
	return id, err
}

func (r *recordingRuntime) SandboxConfigs() []*runtimeapi.PodSandboxConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*runtimeapi.PodSandboxConfig(nil), r.sandboxes...)
}

func (r *recordingRuntime) CreateContainer(ctx context.Context, sb string, cfg *runtimeapi.ContainerConfig, sbc *runtimeapi.PodSandboxConfig) (string, error) {
	id, err := r.FakeRuntimeService.CreateContainer(ctx, sb, cfg, sbc)
	if err == nil {
		r.mu.Lock()
		r.containers[id] = cfg
		r.mu.Unlock()
		r.note("create:" + cfg.Metadata.Name)
	}
	return id, err
}

// ContainerConfig returns the config of the newest container named name.
func (r *recordingRuntime) ContainerConfig(name string) *runtimeapi.ContainerConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out *runtimeapi.ContainerConfig
	for _, c := range r.containers {
		if c.Metadata.Name == name && (out == nil || c.Metadata.Attempt > out.Metadata.Attempt) {
			out = c
		}
	}
	return out
}

func (r *recordingRuntime) StartContainer(ctx context.Context, id string) error {
	r.mu.Lock()
	cfg := r.containers[id]
	fail := r.failStart[cfg.GetMetadata().GetName()]
	r.mu.Unlock()
	if fail != nil {
		r.Lock()
		if c, ok := r.Containers[id]; ok {
			c.State = runtimeapi.ContainerState_CONTAINER_EXITED
			c.ExitCode = 128
			c.Reason = "StartError"
			c.Message = fail.Error()
		}
		r.Unlock()
		return fail
	}
	err := r.FakeRuntimeService.StartContainer(ctx, id)
	if err == nil {
		r.note("start:" + cfg.GetMetadata().GetName())
	}
	return err
}

// SetFailStop makes stops of containers named name fail with err (nil:
// succeed again).
func (r *recordingRuntime) SetFailStop(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.failStop, name)
		return
	}
	r.failStop[name] = err
}

func (r *recordingRuntime) StopContainer(ctx context.Context, id string, timeout int64) error {
	r.mu.Lock()
	r.stops[id] = timeout
	name := r.containers[id].GetMetadata().GetName()
	fail := r.failStop[name]
	r.mu.Unlock()
	if fail != nil {
		return fail
	}
	err := r.FakeRuntimeService.StopContainer(ctx, id, timeout)
	r.note("stop:" + name)
	return err
}

func (r *recordingRuntime) StopTimeout(id string) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.stops[id]
	return t, ok
}

func (r *recordingRuntime) StopPodSandbox(ctx context.Context, id string) error {
	err := r.FakeRuntimeService.StopPodSandbox(ctx, id)
	r.note("stopSandbox")
	return err
}

func (r *recordingRuntime) RemovePodSandbox(ctx context.Context, id string) error {
	err := r.FakeRuntimeService.RemovePodSandbox(ctx, id)
	r.note("removeSandbox")
	return err
}

func (r *recordingRuntime) RemoveContainer(ctx context.Context, id string) error {
	r.mu.Lock()
	name := r.containers[id].GetMetadata().GetName()
	r.mu.Unlock()
	err := r.FakeRuntimeService.RemoveContainer(ctx, id)
	r.note("remove:" + name)
	return err
}

// fakeVolumes hands out a directory per volume and remembers teardowns.
type fakeVolumes struct {
	mu        sync.Mutex
	root      string
	fail      map[string]error
	panicFor  map[string]bool
	teardowns []types.UID
	// failTeardowns fails that many Teardown calls first, as a CSI
	// driver not registered yet does.
	failTeardowns int
	attempts      int
}

func (v *fakeVolumes) Setup(_ context.Context, pod *v1.Pod) (map[string]string, error) {
	v.mu.Lock()
	err := v.fail[pod.Name]
	boom := v.panicFor[pod.Name]
	v.mu.Unlock()
	if boom {
		panic("volume plugin bug")
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, vol := range pod.Spec.Volumes {
		dir := filepath.Join(v.root, string(pod.UID), vol.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		out[vol.Name] = dir
	}
	return out, nil
}

func (v *fakeVolumes) Teardown(_ context.Context, uid types.UID) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.attempts++
	if v.failTeardowns > 0 {
		v.failTeardowns--
		return errors.New("CSI driver csi.example not registered")
	}
	v.teardowns = append(v.teardowns, uid)
	return nil
}

func (v *fakeVolumes) TornDown(uid types.UID) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, u := range v.teardowns {
		if u == uid {
			return true
		}
	}
	return false
}
