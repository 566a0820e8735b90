package podruntime

import (
	"context"
	"errors"
	"fmt"
	"os"

	"k8s.io/klog/v2"
)

// RemoveAll removes every container and sandbox of the pod.
func (p *Pod) RemoveAll(ctx context.Context, rt *PodState) error {
	var errs []error
	for _, c := range rt.Containers {
		if err := p.r.runtime.RemoveContainer(ctx, c.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID, err))
		}
	}
	for _, sb := range rt.Sandboxes {
		if err := p.r.runtime.RemovePodSandbox(ctx, sb.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", sb.ID, err))
		}
	}
	return errors.Join(errs...)
}

// CollectGarbage removes the dead containers of the pod beyond the newest
// one per container name (kept for `kubectl logs --previous`), and dead
// sandboxes other than the newest once they hold no container.
func (p *Pod) CollectGarbage(ctx context.Context, rt *PodState) (removed []string) {
	logger := klog.FromContext(ctx)
	kept := map[string]bool{}
	left := map[string]int{}
	for _, c := range rt.Containers {
		if c.Running() || !kept[c.Name] {
			if !c.Running() {
				kept[c.Name] = true
			}
			left[c.SandboxID]++
			continue
		}
		if err := p.r.runtime.RemoveContainer(ctx, c.ID); err != nil {
			logger.Error(err, "Cannot remove dead container", "containerID", c.ID)
			left[c.SandboxID]++
			continue
		}
		if c.TermFile != "" {
			_ = os.Remove(c.TermFile)
		}
		removed = append(removed, c.ID)
	}
	for i, sb := range rt.Sandboxes {
		if i == 0 || sb.Ready || left[sb.ID] > 0 {
			continue
		}
		if err := p.r.runtime.RemovePodSandbox(ctx, sb.ID); err != nil {
			logger.Error(err, "Cannot remove dead sandbox", "sandboxID", sb.ID)
		}
	}
	return removed
}
