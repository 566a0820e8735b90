package stream

import (
	"context"
	"fmt"
	"net/http"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/cri"
)

// findSandbox returns the pod's newest ready sandbox. A pod with no sandbox
// (of that UID, if given) is not found; one whose sandboxes are all stopped
// is not running.
func (h *Handler) findSandbox(ctx context.Context, pod podRef) (*runtimeapi.PodSandbox, error) {
	sandboxes, err := cri.PodSandboxes(ctx, h.cfg.Runtime, pod.Namespace, pod.Name)
	if err != nil {
		return nil, err
	}
	if len(sandboxes) == 0 {
		return nil, withStatus(http.StatusNotFound, "pod %s not found on this node", pod)
	}
	if pod.UID != "" {
		var mine []*runtimeapi.PodSandbox
		for _, sb := range sandboxes {
			if cri.SandboxUID(sb) == pod.UID {
				mine = append(mine, sb)
			}
		}
		if len(mine) == 0 {
			return nil, withStatus(http.StatusNotFound, "pod %s with UID %s not found on this node (its UID is %s)",
				pod, pod.UID, cri.SandboxUID(sandboxes[0]))
		}
		sandboxes = mine
	}
	// Newest first: the first ready one is the newest ready one.
	for _, sb := range sandboxes {
		if sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			return sb, nil
		}
	}
	return nil, withStatus(http.StatusBadRequest, "pod %s is not running: it has no ready sandbox", pod)
}

// findContainer returns the newest running container named name in sandbox
// sb of pod.
func (h *Handler) findContainer(ctx context.Context, pod podRef, sb *runtimeapi.PodSandbox, name string) (*runtimeapi.Container, error) {
	containers, err := cri.ContainerInstances(ctx, h.cfg.Runtime, cri.InstanceQuery{Name: name, SandboxID: sb.GetId()})
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", pod, err)
	}
	if len(containers) == 0 {
		return nil, withStatus(http.StatusNotFound, "container not found (%q) in pod %s", name, pod)
	}
	for _, c := range containers {
		if c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return c, nil
		}
	}
	return nil, withStatus(http.StatusBadRequest, "container %s is not running (%s) in pod %s",
		name, cri.ContainerStateName(containers[0].GetState()), pod)
}
