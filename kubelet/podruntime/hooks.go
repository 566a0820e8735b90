package podruntime

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/kubelet/probe"
)

// reasonPostStartHookError is the waiting reason of a container whose
// postStart hook failed.
const reasonPostStartHookError = "PostStartHookError"

// errHook marks a lifecycle hook that ran and failed.
var errHook = errors.New("lifecycle hook failed")

// hookTarget is the container instance a lifecycle hook runs against.
type hookTarget struct {
	Pod       *v1.Pod
	Container *v1.Container
	ID        string
	PodIP     string
}

// runHook runs a lifecycle handler within timeout (0: no limit of its own;
// ctx bounds it). exec runs through CRI and must exit 0, httpGet must
// answer 2xx or 3xx, sleep waits on the clock.
func (p *Pod) runHook(ctx context.Context, t hookTarget, h *v1.LifecycleHandler, timeout time.Duration) error {
	switch {
	case h.Exec != nil:
		res, out, err := probe.Exec(ctx, p.r.runtime, t.ID, h.Exec.Command, timeout)
		if err != nil {
			return fmt.Errorf("exec %q: %w", h.Exec.Command, err)
		}
		if res == probe.Failure {
			return fmt.Errorf("%w: exec %q: %s", errHook, h.Exec.Command, out)
		}
		return nil
	case h.HTTPGet != nil:
		req, err := probe.NewHTTPRequest(ctx, h.HTTPGet, t.PodIP, t.Container)
		if err != nil {
			return fmt.Errorf("http hook: %w", err)
		}
		if res, out, _ := probe.HTTP(req, timeout); res == probe.Failure {
			return fmt.Errorf("%w: http GET %s: %s", errHook, req.URL, out)
		}
		return nil
	case h.Sleep != nil:
		select {
		case <-p.r.clock.After(time.Duration(h.Sleep.Seconds) * time.Second):
		case <-ctx.Done():
		}
		return nil
	case h.TCPSocket != nil:
		// Deprecated and never run by the kubelet either.
		klog.FromContext(ctx).V(2).Info("Ignoring tcpSocket lifecycle hook", "container", t.Container.Name)
		return nil
	}
	return nil
}

// runPostStart runs the container's postStart hook right after its start.
// A failed hook stops the container (its restart policy and back-off then
// apply) and is returned.
func (p *Pod) runPostStart(ctx context.Context, t hookTarget) error {
	h := t.Container.Lifecycle.PostStart
	if err := p.runHook(ctx, t, h, 0); err != nil {
		msg := fmt.Sprintf("PostStartHook failed: %v", err)
		klog.FromContext(ctx).Error(err, "PostStart hook failed; stopping the container", "container", t.Container.Name)
		p.r.recorder.Event(t.Pod, v1.EventTypeWarning, "FailedPostStartHook", msg)
		c := &ContainerState{ID: t.ID, Name: t.Container.Name}
		if stopErr := p.StopContainer(ctx, t.Pod, c, SpecGracePeriod(t.Pod), "FailedPostStartHook"); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return p.failed(t.Container, reasonPostStartHookError, msg, fmt.Errorf("postStart hook of %s: %w", t.Container.Name, err))
	}
	return nil
}

// runPreStop runs the container's preStop hook within the grace period and
// returns what is left of it for the stop: at least minGracePeriod, as
// under the kubelet. A hook that fails or overruns is logged with an event;
// the container is stopped all the same.
func (p *Pod) runPreStop(ctx context.Context, t hookTarget, grace int64) int64 {
	clock := p.r.clock
	start := clock.Now()
	limit := time.Duration(grace) * time.Second
	hookCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.runHook(hookCtx, t, t.Container.Lifecycle.PreStop, limit) }()
	select {
	case err := <-done:
		if err != nil {
			klog.FromContext(ctx).Error(err, "PreStop hook failed", "container", t.Container.Name)
			p.r.recorder.Eventf(t.Pod, v1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %v", err)
		}
	case <-clock.After(limit):
		klog.FromContext(ctx).V(2).Info("PreStop hook did not finish within the grace period", "container", t.Container.Name, "gracePeriod", grace)
	case <-ctx.Done():
	}
	left := grace - int64(clock.Since(start)/time.Second)
	return max(left, MinGracePeriod)
}

// ContainerSpec returns the spec of the pod's container (regular or init)
// named name.
func ContainerSpec(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
