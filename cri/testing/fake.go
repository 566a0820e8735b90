package testing

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"

	"github.com/berthnode/berth/cri"
)

// Runtime is upstream's FakeRuntimeService with what berth's tests need on
// top; every call not overridden here is upstream's. Calls are recorded in
// Called, as upstream's are, and errors injected with InjectError.
type Runtime struct {
	*critest.FakeRuntimeService

	// StreamBase is the scheme://host of the URLs Exec, Attach and
	// PortForward hand out: StreamBase/{exec,attach,portforward}/token-N.
	StreamBase string
	// StreamErr, when set, is what Exec, Attach and PortForward return.
	StreamErr error
	// Reopen, when set, is called by ReopenContainerLog (as the runtime
	// opens a new log file); its error is returned.
	Reopen func(id string) error

	mu       sync.Mutex
	reopens  []string
	requests []any
	tokens   int
}

// NewRuntime returns a Runtime with nothing in it.
func NewRuntime() *Runtime {
	return &Runtime{FakeRuntimeService: critest.NewFakeRuntimeService()}
}

// Sandbox is a pod sandbox to add.
type Sandbox struct {
	ID                   string
	Namespace, Name, UID string
	Attempt              uint32
	// CreatedAt is when it was created, in nanoseconds.
	CreatedAt int64
	// NotReady makes a stopped sandbox; sandboxes are ready by default.
	NotReady bool
}

// AddSandbox adds a sandbox with the kubelet's labels.
func (r *Runtime) AddSandbox(s Sandbox) {
	state := runtimeapi.PodSandboxState_SANDBOX_READY
	if s.NotReady {
		state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	}
	r.Lock()
	defer r.Unlock()
	r.Sandboxes[s.ID] = &critest.FakePodSandbox{PodSandboxStatus: runtimeapi.PodSandboxStatus{
		Id:        s.ID,
		Metadata:  &runtimeapi.PodSandboxMetadata{Name: s.Name, Namespace: s.Namespace, Uid: s.UID, Attempt: s.Attempt},
		State:     state,
		CreatedAt: s.CreatedAt,
		Labels:    map[string]string{cri.LabelPodNamespace: s.Namespace, cri.LabelPodName: s.Name, cri.LabelPodUID: s.UID},
	}}
}

// Container is a container to add.
type Container struct {
	ID, SandboxID string
	// Name is the container's name in the pod's spec.
	Name string
	// Attempt is the instance's attempt and restart count.
	Attempt uint32
	State   runtimeapi.ContainerState
	// CreatedAt is when it was created, in nanoseconds.
	CreatedAt int64
	// LogPath is the log file ContainerStatus names.
	LogPath string
}

// AddContainer adds a container to a sandbox added before. Like the
// kubelet's, its labels are its sandbox's and its name, and an annotation
// holds its restart count.
func (r *Runtime) AddContainer(c Container) {
	r.Lock()
	defer r.Unlock()
	sb, ok := r.Sandboxes[c.SandboxID]
	if !ok {
		panic("critesting: no sandbox " + c.SandboxID)
	}
	labels := maps.Clone(sb.Labels)
	labels[cri.LabelContainerName] = c.Name
	r.Containers[c.ID] = &critest.FakeContainer{
		ContainerStatus: runtimeapi.ContainerStatus{
			Id:          c.ID,
			Metadata:    &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
			State:       c.State,
			CreatedAt:   c.CreatedAt,
			Labels:      labels,
			Annotations: map[string]string{cri.AnnotationRestartCount: strconv.Itoa(int(c.Attempt))},
			LogPath:     c.LogPath,
		},
		SandboxID: c.SandboxID,
	}
}

// SetContainerState sets the state of container id.
func (r *Runtime) SetContainerState(id string, state runtimeapi.ContainerState) {
	r.Lock()
	defer r.Unlock()
	r.Containers[id].State = state
}

// SetContainerStats adds (or replaces) what ListContainerStats reports of
// the container s names.
func (r *Runtime) SetContainerStats(s *runtimeapi.ContainerStats) {
	r.Lock()
	defer r.Unlock()
	r.FakeContainerStats[s.GetAttributes().GetId()] = s
}

// SetPodSandboxStats adds (or replaces) what ListPodSandboxStats reports of
// the sandbox s names.
func (r *Runtime) SetPodSandboxStats(s *runtimeapi.PodSandboxStats) {
	r.Lock()
	defer r.Unlock()
	r.FakePodSandboxStats[s.GetAttributes().GetId()] = s
}

// CallCount returns how many times method was called.
func (r *Runtime) CallCount(method string) int {
	n := 0
	for _, c := range r.GetCalls() {
		if c == method {
			n++
		}
	}
	return n
}

// ListPodSandbox is upstream's, oldest first (upstream's order is a map's).
func (r *Runtime) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	out, err := r.FakeRuntimeService.ListPodSandbox(ctx, filter)
	slices.SortFunc(out, func(a, b *runtimeapi.PodSandbox) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.Id, b.Id))
	})
	return out, err
}

// ListContainers is upstream's, oldest first (upstream's order is a map's).
func (r *Runtime) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	out, err := r.FakeRuntimeService.ListContainers(ctx, filter)
	slices.SortFunc(out, func(a, b *runtimeapi.Container) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.Id, b.Id))
	})
	return out, err
}

// ContainerStatus is upstream's, failing with NotFound, as containerd does,
// for a container it does not know.
func (r *Runtime) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	r.Lock()
	_, ok := r.Containers[id]
	r.Unlock()
	resp, err := r.FakeRuntimeService.ContainerStatus(ctx, id, verbose)
	if err != nil && !ok {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	return resp, err
}

// ReopenContainerLog records id and calls Reopen.
func (r *Runtime) ReopenContainerLog(ctx context.Context, id string) error {
	if err := r.FakeRuntimeService.ReopenContainerLog(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	r.reopens = append(r.reopens, id)
	reopen := r.Reopen
	r.mu.Unlock()
	if reopen != nil {
		return reopen(id)
	}
	return nil
}

// Reopens returns the containers whose logs were reopened, in order.
func (r *Runtime) Reopens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reopens)
}

// Exec records req and returns a URL, if the container runs.
func (r *Runtime) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if _, err := r.FakeRuntimeService.Exec(ctx, req); err != nil {
		return nil, err
	}
	if err := r.running(req.GetContainerId()); err != nil {
		return nil, err
	}
	u, err := r.streamURL("exec", req)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecResponse{Url: u}, nil
}

// Attach records req and returns a URL, if the container runs.
func (r *Runtime) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if _, err := r.FakeRuntimeService.Attach(ctx, req); err != nil {
		return nil, err
	}
	if err := r.running(req.GetContainerId()); err != nil {
		return nil, err
	}
	u, err := r.streamURL("attach", req)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.AttachResponse{Url: u}, nil
}

// PortForward records req and returns a URL.
func (r *Runtime) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if _, err := r.FakeRuntimeService.PortForward(ctx, req); err != nil {
		return nil, err
	}
	u, err := r.streamURL("portforward", req)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PortForwardResponse{Url: u}, nil
}

// StreamRequests returns the Exec, Attach and PortForward requests that
// reached the streaming part of the runtime, in order.
func (r *Runtime) StreamRequests() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// running fails as containerd does for a container that is not there or
// does not run.
func (r *Runtime) running(id string) error {
	r.Lock()
	defer r.Unlock()
	c, ok := r.Containers[id]
	switch {
	case !ok:
		return status.Errorf(codes.NotFound, "container %s not found", id)
	case c.State != runtimeapi.ContainerState_CONTAINER_RUNNING:
		return status.Errorf(codes.FailedPrecondition, "container %s is in %s state", id, c.State)
	}
	return nil
}

// streamURL records req and returns a new URL of kind, unless StreamErr
// is set.
func (r *Runtime) streamURL(kind string, req any) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
	if r.StreamErr != nil {
		return "", r.StreamErr
	}
	r.tokens++
	return fmt.Sprintf("%s/%s/token-%d", r.StreamBase, kind, r.tokens), nil
}
