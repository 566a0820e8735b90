package stream

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime is a CRI runtime service that keeps sandboxes and containers
// and hands out streaming URLs of a server the test controls. Only what the
// Handler calls is implemented; anything else panics on the nil embedded
// interface.
type fakeRuntime struct {
	internalapi.RuntimeService

	mu         sync.Mutex
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
	// streamBase is the scheme://host of the URLs handed out; paths are
	// /{kind}/{token}.
	streamBase string
	// streamErr, when set, is what Exec, Attach and PortForward return.
	streamErr error
	// requests are the Exec, Attach and PortForward requests, in order.
	requests []any
	tokens   int
}

// addSandbox adds a sandbox of pod namespace/name with uid and returns its ID.
func (f *fakeRuntime) addSandbox(namespace, name, uid string, ready bool, createdAt int64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	state := runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	if ready {
		state = runtimeapi.PodSandboxState_SANDBOX_READY
	}
	id := fmt.Sprintf("sb-%d", len(f.sandboxes)+1)
	f.sandboxes = append(f.sandboxes, &runtimeapi.PodSandbox{
		Id:        id,
		Metadata:  &runtimeapi.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: uid},
		State:     state,
		CreatedAt: createdAt,
		Labels:    map[string]string{labelPodNamespace: namespace, labelPodName: name, labelPodUID: uid},
	})
	return id
}

// addContainer adds a container named name to sandbox sandboxID and
// returns its ID. Like the kubelet's, its labels are its sandbox's and its
// name.
func (f *fakeRuntime) addContainer(sandboxID, name string, state runtimeapi.ContainerState, createdAt int64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var labels map[string]string
	for _, sb := range f.sandboxes {
		if sb.Id == sandboxID {
			labels = maps.Clone(sb.Labels)
		}
	}
	labels[labelContainerName] = name
	id := fmt.Sprintf("c-%d", len(f.containers)+1)
	f.containers = append(f.containers, &runtimeapi.Container{
		Id:           id,
		PodSandboxId: sandboxID,
		Metadata:     &runtimeapi.ContainerMetadata{Name: name},
		State:        state,
		CreatedAt:    createdAt,
		Labels:       labels,
	})
	return id
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
	for _, sb := range f.sandboxes {
		if filter.GetId() != "" && filter.GetId() != sb.Id {
			continue
		}
		if filter.GetState() != nil && filter.GetState().GetState() != sb.State {
			continue
		}
		if !matches(sb.Labels, filter.GetLabelSelector()) {
			continue
		}
		out = append(out, sb)
	}
	return out, nil
}

func (f *fakeRuntime) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		if filter.GetId() != "" && filter.GetId() != c.Id {
			continue
		}
		if filter.GetPodSandboxId() != "" && filter.GetPodSandboxId() != c.PodSandboxId {
			continue
		}
		if filter.GetState() != nil && filter.GetState().GetState() != c.State {
			continue
		}
		if !matches(c.Labels, filter.GetLabelSelector()) {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// streamURL records req and returns a fresh URL of kind, unless the
// runtime fails.
func (f *fakeRuntime) streamURL(kind string, req any) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	if f.streamErr != nil {
		return "", f.streamErr
	}
	f.tokens++
	return fmt.Sprintf("%s/%s/token-%d", f.streamBase, kind, f.tokens), nil
}

// runningContainer fails like containerd for a container that is not
// there or not running.
func (f *fakeRuntime) runningContainer(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.containers {
		if c.Id == id {
			if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				return status.Errorf(codes.FailedPrecondition, "container %s is in %s state", id, c.State)
			}
			return nil
		}
	}
	return status.Errorf(codes.NotFound, "container %s not found", id)
}

func (f *fakeRuntime) Exec(_ context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if err := f.runningContainer(req.ContainerId); err != nil {
		return nil, err
	}
	u, err := f.streamURL("exec", req)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecResponse{Url: u}, nil
}

func (f *fakeRuntime) Attach(_ context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := f.runningContainer(req.ContainerId); err != nil {
		return nil, err
	}
	u, err := f.streamURL("attach", req)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.AttachResponse{Url: u}, nil
}

func (f *fakeRuntime) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	u, err := f.streamURL("portforward", req)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PortForwardResponse{Url: u}, nil
}

// streamRequests returns the streaming requests made so far.
func (f *fakeRuntime) streamRequests() []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]any(nil), f.requests...)
}
