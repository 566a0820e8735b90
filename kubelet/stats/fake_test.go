package stats

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime is a CRI runtime service keeping sandboxes, containers and
// their statistics, answering the calls the provider makes; any other call
// panics through the nil embedded interface.
type fakeRuntime struct {
	internalapi.RuntimeService

	mu             sync.Mutex
	sandboxes      []*runtimeapi.PodSandbox
	containers     []*runtimeapi.Container
	containerStats map[string]*runtimeapi.ContainerStats
	sandboxStats   map[string]*runtimeapi.PodSandboxStats
	// noSandboxStats makes ListPodSandboxStats unimplemented, as in
	// runtimes that predate it.
	noSandboxStats bool
	sandboxCalls   int
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{
		containerStats: map[string]*runtimeapi.ContainerStats{},
		sandboxStats:   map[string]*runtimeapi.PodSandboxStats{},
	}
}

func (f *fakeRuntime) addSandbox(id, ns, name, uid string, created int64, ready bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	state := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	if ready {
		state = runtimeapi.PodSandboxState_SANDBOX_READY
	}
	f.sandboxes = append(f.sandboxes, &runtimeapi.PodSandbox{
		Id:        id,
		Metadata:  &runtimeapi.PodSandboxMetadata{Name: name, Namespace: ns, Uid: uid},
		State:     state,
		CreatedAt: created,
	})
}

func (f *fakeRuntime) addContainer(id, sandbox, name string, created int64, running bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	state := runtimeapi.ContainerState_CONTAINER_EXITED
	if running {
		state = runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	f.containers = append(f.containers, &runtimeapi.Container{
		Id:           id,
		PodSandboxId: sandbox,
		Metadata:     &runtimeapi.ContainerMetadata{Name: name},
		State:        state,
		CreatedAt:    created,
	})
}

// setContainerStats sets what the runtime reports of container id at time
// ts (nanoseconds): cumulative CPU, the CPU rate if it computes one (nil
// otherwise), and the memory working set.
func (f *fakeRuntime) setContainerStats(id, name string, ts int64, cpuNanos uint64, nanoCores *uint64, ws uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: name}},
		Cpu: &runtimeapi.CpuUsage{
			Timestamp:            ts,
			UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpuNanos},
		},
		Memory: &runtimeapi.MemoryUsage{
			Timestamp:       ts,
			WorkingSetBytes: &runtimeapi.UInt64Value{Value: ws},
			UsageBytes:      &runtimeapi.UInt64Value{Value: ws + 100},
		},
		WritableLayer: &runtimeapi.FilesystemUsage{
			Timestamp: ts,
			UsedBytes: &runtimeapi.UInt64Value{Value: 4096},
		},
	}
	if nanoCores != nil {
		s.Cpu.UsageNanoCores = &runtimeapi.UInt64Value{Value: *nanoCores}
	}
	f.containerStats[id] = s
}

func (f *fakeRuntime) setSandboxStats(id string, ts int64, cpuNanos uint64, ws uint64, procs uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sandboxStats[id] = &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: id},
		Linux: &runtimeapi.LinuxPodSandboxStats{
			Cpu: &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpuNanos}},
			Memory: &runtimeapi.MemoryUsage{
				Timestamp:       ts,
				WorkingSetBytes: &runtimeapi.UInt64Value{Value: ws},
			},
			Network: &runtimeapi.NetworkUsage{
				Timestamp: ts,
				DefaultInterface: &runtimeapi.NetworkInterfaceUsage{
					Name: "eth0", RxBytes: &runtimeapi.UInt64Value{Value: 10}, TxBytes: &runtimeapi.UInt64Value{Value: 20},
				},
			},
			Process: &runtimeapi.ProcessUsage{Timestamp: ts, ProcessCount: &runtimeapi.UInt64Value{Value: procs}},
		},
	}
}

func (f *fakeRuntime) ListPodSandbox(_ context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, s := range f.sandboxes {
		if st := filter.GetState(); st != nil && st.State != s.State {
			continue
		}
		out = append(out, proto.Clone(s).(*runtimeapi.PodSandbox))
	}
	return out, nil
}

func (f *fakeRuntime) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		if st := filter.GetState(); st != nil && st.State != c.State {
			continue
		}
		out = append(out, proto.Clone(c).(*runtimeapi.Container))
	}
	return out, nil
}

func (f *fakeRuntime) ListContainerStats(context.Context, *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.ContainerStats
	for _, s := range f.containerStats {
		out = append(out, proto.Clone(s).(*runtimeapi.ContainerStats))
	}
	return out, nil
}

func (f *fakeRuntime) ListPodSandboxStats(context.Context, *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sandboxCalls++
	if f.noSandboxStats {
		return nil, status.Error(codes.Unimplemented, "not implemented")
	}
	var out []*runtimeapi.PodSandboxStats
	for _, s := range f.sandboxStats {
		out = append(out, proto.Clone(s).(*runtimeapi.PodSandboxStats))
	}
	return out, nil
}

// writeTree writes files below root, by relative path.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
