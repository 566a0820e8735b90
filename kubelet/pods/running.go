package pods

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunningPodList lists what the runtime runs, as kubelet's /runningpods/
// does: a pod per ready sandbox, with its running containers (name, image
// and ID), whatever the API says.
func (m *Manager) RunningPodList(ctx context.Context) (*v1.PodList, error) {
	sandboxes, err := m.cfg.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	containers, err := m.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	list := &v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
	bySandbox := map[string]int{}
	for _, s := range sandboxes {
		if s.Metadata == nil {
			continue
		}
		bySandbox[s.Id] = len(list.Items)
		list.Items = append(list.Items, v1.Pod{ObjectMeta: metav1.ObjectMeta{
			Name: s.Metadata.Name, Namespace: s.Metadata.Namespace, UID: types.UID(s.Metadata.Uid),
		}})
	}
	for _, c := range containers {
		i, ok := bySandbox[c.PodSandboxId]
		if !ok || c.Metadata == nil {
			continue
		}
		image := c.ImageRef
		if c.Image != nil && c.Image.Image != "" {
			image = c.Image.Image
		}
		list.Items[i].Spec.Containers = append(list.Items[i].Spec.Containers, v1.Container{Name: c.Metadata.Name, Image: image})
		list.Items[i].Status.ContainerStatuses = append(list.Items[i].Status.ContainerStatuses, v1.ContainerStatus{
			Name: c.Metadata.Name, Image: image, ContainerID: m.deps.runtimeName.get(ctx) + "://" + c.Id,
		})
	}
	return list, nil
}

// RunningPodsHandler serves RunningPodList as JSON.
func (m *Manager) RunningPodsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := m.RunningPodList(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(list)
	})
}
