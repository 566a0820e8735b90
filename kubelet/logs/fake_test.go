package logs

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime is a CRI runtime service that keeps sandboxes and containers
// and answers the calls this package makes; any other call panics through
// the nil embedded interface.
type fakeRuntime struct {
	internalapi.RuntimeService

	mu         sync.Mutex
	sandboxes  []*runtimeapi.PodSandbox
	containers []*fakeContainer
	// reopen, if set, is called by ReopenContainerLog; its error is returned.
	reopen  func(id string) error
	reopens []string
	// statusCalls counts ContainerStatus calls.
	statusCalls int
}

type fakeContainer struct {
	c       *runtimeapi.Container
	logPath string
}

func newFakeRuntime() *fakeRuntime { return &fakeRuntime{} }

// addSandbox adds a ready sandbox of pod ns/name with uid, created at
// created (nanoseconds).
func (f *fakeRuntime) addSandbox(id, ns, name, uid string, created int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sandboxes = append(f.sandboxes, &runtimeapi.PodSandbox{
		Id:        id,
		Metadata:  &runtimeapi.PodSandboxMetadata{Name: name, Namespace: ns, Uid: uid},
		State:     runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt: created,
		Labels:    map[string]string{labelPodNamespace: ns, labelPodName: name, labelPodUID: uid},
	})
}

// addContainer adds a container of the sandbox sb with restart count
// restarts, in state, logging to logPath.
func (f *fakeRuntime) addContainer(id, sb, name string, restarts int, state runtimeapi.ContainerState, logPath string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var sandbox *runtimeapi.PodSandbox
	for _, s := range f.sandboxes {
		if s.Id == sb {
			sandbox = s
		}
	}
	if sandbox == nil {
		panic("no sandbox " + sb)
	}
	labels := maps.Clone(sandbox.Labels)
	labels[labelContainerName] = name
	f.containers = append(f.containers, &fakeContainer{
		c: &runtimeapi.Container{
			Id:           id,
			PodSandboxId: sb,
			Metadata:     &runtimeapi.ContainerMetadata{Name: name, Attempt: uint32(restarts)},
			State:        state,
			CreatedAt:    sandbox.CreatedAt + int64(restarts) + 1,
			Labels:       labels,
			Annotations:  map[string]string{annotationRestarts: strconv.Itoa(restarts)},
		},
		logPath: logPath,
	})
}

func (f *fakeRuntime) setState(id string, state runtimeapi.ContainerState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.c.Id == id {
			c.c.State = state
		}
	}
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeRuntime) ListPodSandbox(_ context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, s := range f.sandboxes {
		if matches(s.Labels, filter.GetLabelSelector()) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeRuntime) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		if !matches(c.c.Labels, filter.GetLabelSelector()) {
			continue
		}
		if st := filter.GetState(); st != nil && st.State != c.c.State {
			continue
		}
		out = append(out, proto.Clone(c.c).(*runtimeapi.Container))
	}
	return out, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusCalls++
	for _, c := range f.containers {
		if c.c.Id == id {
			return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{
				Id: id, State: c.c.State, LogPath: c.logPath, Metadata: c.c.Metadata,
			}}, nil
		}
	}
	return nil, status.Error(codes.NotFound, fmt.Sprintf("container %s not found", id))
}

func (f *fakeRuntime) ReopenContainerLog(_ context.Context, id string) error {
	f.mu.Lock()
	f.reopens = append(f.reopens, id)
	reopen := f.reopen
	f.mu.Unlock()
	if reopen != nil {
		return reopen(id)
	}
	return nil
}
