package pods

import (
	"context"
	"fmt"

	"github.com/berthnode/berth/kubelet/podruntime"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// podIP is the pod's primary IP: the sandbox's, or the node's for a host
// network pod.
func (w *podWorker) podIP(pod *v1.Pod, rt *podruntime.PodState) string {
	if pod.Spec.HostNetwork {
		if ips := w.hostIPs(); len(ips) > 0 {
			return ips[0]
		}
		return ""
	}
	if sb := rt.NewestSandbox(); sb != nil && len(sb.IPs) > 0 {
		return sb.IPs[0]
	}
	return pod.Status.PodIP
}

// killUnhealthy stops the running containers whose liveness or startup
// probe gave up on them; the restart policy then decides on their restart.
// It tells whether it stopped any.
func (w *podWorker) killUnhealthy(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) (bool, error) {
	kills := w.probes.TakeKills()
	if len(kills) == 0 {
		return false, nil
	}
	var list []*podruntime.ContainerState
	for _, c := range rt.RunningContainers() {
		if _, ok := kills[c.ID]; ok {
			list = append(list, c)
		}
	}
	if len(list) == 0 {
		return false, nil
	}
	var errs []error
	for _, c := range list {
		k := kills[c.ID]
		klog.FromContext(ctx).V(2).Info("Killing unhealthy container", "container", c.Name, "containerID", c.ID, "reason", k.Message)
		if err := w.runtime.StopContainer(ctx, pod, c, k.Grace, k.Message); err != nil {
			errs = append(errs, err)
			// Ask again at the next sync.
			w.probes.RequestKill(c.ID, k)
		}
	}
	if len(errs) > 0 {
		return true, fmt.Errorf("stop unhealthy containers: %w", errs[0])
	}
	return true, nil
}
