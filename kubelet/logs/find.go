package logs

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/cri"
)

// errPodNotFound and errNoLogs tell why there is no log to read: the pod
// does not exist (404), or it has no container instance with logs to show
// (400, as the kubelet answers).
var (
	errPodNotFound = errors.New("pod not found")
	errNoLogs      = errors.New("no logs to show")
)

// statusOf returns the HTTP status for an error of findContainer.
func statusOf(err error) int {
	switch {
	case errors.Is(err, errPodNotFound):
		return http.StatusNotFound
	case errors.Is(err, errNoLogs):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

// target is the container instance whose log is read.
type target struct {
	id      string
	logPath string
}

// findContainer finds the container instance of the pod's container named
// name whose log is wanted. The pod is the newest one of that namespace and
// name (a pod deleted and created again keeps its name, not its UID). Like
// the kubelet, without previous it is the newest instance that started, and
// with previous the one before the newest instance (the last terminated
// one, while the newest runs or waits).
func findContainer(ctx context.Context, rt internalapi.RuntimeService, ns, pod, name string, previous bool) (*target, error) {
	sandboxes, err := cri.PodSandboxes(ctx, rt, ns, pod)
	if err != nil {
		return nil, err
	}
	if len(sandboxes) == 0 {
		return nil, fmt.Errorf("pod %q does not exist: %w", pod, errPodNotFound)
	}
	instances, err := cri.ContainerInstances(ctx, rt, cri.InstanceQuery{Name: name, PodUID: cri.SandboxUID(sandboxes[0])})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", ns, pod, err)
	}
	c, err := pick(instances, name, pod, previous)
	if err != nil {
		return nil, err
	}
	resp, err := rt.ContainerStatus(ctx, c.Id, false)
	if err != nil {
		return nil, fmt.Errorf("status of container %s: %w", c.Id, err)
	}
	path := resp.GetStatus().GetLogPath()
	if path == "" {
		return nil, fmt.Errorf("container %q in pod %q has no log file: %w", name, pod, errNoLogs)
	}
	return &target{id: c.Id, logPath: path}, nil
}

// pick chooses among the instances of one container, newest first.
func pick(instances []*runtimeapi.Container, name, pod string, previous bool) (*runtimeapi.Container, error) {
	switch {
	case previous && len(instances) < 2:
		return nil, fmt.Errorf("previous terminated container %q in pod %q not found: %w", name, pod, errNoLogs)
	case previous:
		return instances[1], nil
	case len(instances) == 0:
		return nil, fmt.Errorf("container %q in pod %q is waiting to start - no logs yet: %w", name, pod, errNoLogs)
	case started(instances[0]):
		return instances[0], nil
	case len(instances) > 1:
		// The newest instance was created but not started yet: the
		// kubelet shows the last one that ran.
		return instances[1], nil
	default:
		return nil, fmt.Errorf("container %q in pod %q is waiting to start - no logs yet: %w", name, pod, errNoLogs)
	}
}

func started(c *runtimeapi.Container) bool {
	return c.State == runtimeapi.ContainerState_CONTAINER_RUNNING || c.State == runtimeapi.ContainerState_CONTAINER_EXITED
}

// containerRunning tells whether the container runs; one the runtime no
// longer knows does not.
func containerRunning(ctx context.Context, rt internalapi.RuntimeService, id string) (bool, error) {
	resp, err := rt.ContainerStatus(ctx, id, false)
	if status.Code(err) == codes.NotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return resp.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING, nil
}
