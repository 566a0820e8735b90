package stream

import (
	"context"
	"fmt"
	"net/http"
	"sort"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/cri"
)

// The kubelet's labels on sandboxes and containers, which berth sets too
// (see kubelet/pods).
const (
	labelPodName       = cri.LabelPodName
	labelPodNamespace  = cri.LabelPodNamespace
	labelPodUID        = cri.LabelPodUID
	labelContainerName = cri.LabelContainerName
)

// findSandbox returns the pod's newest ready sandbox. A pod with no sandbox
// (of that UID, if given) is not found; one whose sandboxes are all stopped
// is not running.
func (h *Handler) findSandbox(ctx context.Context, pod podRef) (*runtimeapi.PodSandbox, error) {
	sandboxes, err := h.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{labelPodNamespace: pod.Namespace, labelPodName: pod.Name},
	})
	if err != nil {
		return nil, fmt.Errorf("listing the sandboxes of pod %s: %w", pod, err)
	}
	if len(sandboxes) == 0 {
		return nil, withStatus(http.StatusNotFound, "pod %s not found on this node", pod)
	}
	if pod.UID != "" {
		var mine []*runtimeapi.PodSandbox
		for _, sb := range sandboxes {
			if sb.GetLabels()[labelPodUID] == pod.UID {
				mine = append(mine, sb)
			}
		}
		if len(mine) == 0 {
			return nil, withStatus(http.StatusNotFound, "pod %s with UID %s not found on this node (its UID is %s)",
				pod, pod.UID, newest(sandboxes).GetLabels()[labelPodUID])
		}
		sandboxes = mine
	}
	var ready []*runtimeapi.PodSandbox
	for _, sb := range sandboxes {
		if sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			ready = append(ready, sb)
		}
	}
	if len(ready) == 0 {
		return nil, withStatus(http.StatusBadRequest, "pod %s is not running: it has no ready sandbox", pod)
	}
	return newest(ready), nil
}

// findContainer returns the newest running container named name in sandbox
// sb of pod.
func (h *Handler) findContainer(ctx context.Context, pod podRef, sb *runtimeapi.PodSandbox, name string) (*runtimeapi.Container, error) {
	containers, err := h.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		PodSandboxId:  sb.GetId(),
		LabelSelector: map[string]string{labelContainerName: name},
	})
	if err != nil {
		return nil, fmt.Errorf("listing the containers of pod %s: %w", pod, err)
	}
	if len(containers) == 0 {
		return nil, withStatus(http.StatusNotFound, "container not found (%q) in pod %s", name, pod)
	}
	sort.SliceStable(containers, func(i, j int) bool { return containers[i].GetCreatedAt() > containers[j].GetCreatedAt() })
	for _, c := range containers {
		if c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			return c, nil
		}
	}
	return nil, withStatus(http.StatusBadRequest, "container %s is not running (%s) in pod %s",
		name, cri.ContainerStateName(containers[0].GetState()), pod)
}

// newest returns the sandbox created last.
func newest(sandboxes []*runtimeapi.PodSandbox) *runtimeapi.PodSandbox {
	best := sandboxes[0]
	for _, sb := range sandboxes[1:] {
		if sb.GetCreatedAt() > best.GetCreatedAt() {
			best = sb
		}
	}
	return best
}
