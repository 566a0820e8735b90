package pods

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/berthnode/berth/kubelet/podruntime"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// startContainer pulls, creates and starts one container in the sandbox. A
// failure is recorded as the container's waiting reason with an event.
func (w *podWorker) startContainer(ctx context.Context, pod *v1.Pod, sb *podSandbox, c *v1.Container, rt *podruntime.PodState) error {
	now := w.m.cfg.Clock.Now()
	if cur := rt.Current(c.Name); cur != nil && cur.SandboxID == sb.ID {
		// A restart in the same sandbox: the next one waits longer unless
		// this one runs long.
		w.state.crash.Next(c.Name, exitTime(cur), now)
	}
	restarts := rt.NextRestartCount(c.Name)
	imageRef, img, err := w.ensureImage(ctx, pod, c, sb.Config)
	if err != nil {
		if ie, ok := podruntime.IsImageError(err); ok {
			return w.failed(c, ie.Reason, ie.Message, err)
		}
		return w.failed(c, podruntime.ReasonErrImagePull, podruntime.ShortError(err), err)
	}
	w.state.trace.mark("image")
	if err := podruntime.VerifyNonRoot(pod, c, img); err != nil {
		w.m.cfg.Recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %v", trimConfigErr(err))
		return w.failed(c, podruntime.ReasonCreateConfigError, trimConfigErr(err), err)
	}
	cfg, err := w.buildContainerConfig(ctx, pod, c, sb, rt, imageRef, restarts)
	if err != nil {
		reason := podruntime.ReasonCreateConfigError
		if !errors.Is(err, podruntime.ErrConfig) {
			reason = podruntime.ReasonCreateError
		}
		w.m.cfg.Recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %v", trimConfigErr(err))
		return w.failed(c, reason, trimConfigErr(err), err)
	}
	if err := os.MkdirAll(podruntime.ContainerLogDir(sb.Config.LogDirectory, c.Name), 0o755); err != nil {
		return w.failed(c, podruntime.ReasonCreateError, err.Error(), fmt.Errorf("create container log directory: %w", err))
	}
	id, err := w.m.cfg.Runtime.CreateContainer(ctx, sb.ID, cfg, sb.Config)
	if err != nil {
		w.m.cfg.Recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return w.failed(c, podruntime.ReasonCreateError, podruntime.ShortError(err), fmt.Errorf("create container %s: %w", c.Name, err))
	}
	w.state.trace.mark("created")
	w.m.cfg.Recorder.Eventf(pod, v1.EventTypeNormal, "Created", "Created container: %s", c.Name)
	if err := w.m.cfg.Runtime.StartContainer(ctx, id); err != nil {
		w.m.cfg.Recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return w.failed(c, podruntime.ReasonRunError, podruntime.ShortError(err), fmt.Errorf("start container %s: %w", c.Name, err))
	}
	w.state.trace.mark("started")
	w.m.cfg.Recorder.Eventf(pod, v1.EventTypeNormal, "Started", "Started container %s", c.Name)
	klog.FromContext(ctx).V(2).Info("Started container", "container", c.Name, "containerID", id, "restartCount", restarts)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		podIP := ""
		if len(sb.IPs) > 0 {
			podIP = sb.IPs[0]
		}
		if pod.Spec.HostNetwork {
			if ips := w.m.hostIPs(); len(ips) > 0 {
				podIP = ips[0]
			}
		}
		if err := w.runPostStart(ctx, hookTarget{Pod: pod, Container: c, ID: id, PodIP: podIP}); err != nil {
			return err
		}
	}
	delete(w.state.waiting, c.Name)
	return nil
}

// failed records why a container does not start and returns err.
func (w *podWorker) failed(c *v1.Container, reason, msg string, err error) error {
	w.state.waiting[c.Name] = waitingReason{Reason: reason, Message: msg}
	return err
}

// trimConfigErr drops the errConfig marker from a message.
func trimConfigErr(err error) string {
	msg := err.Error()
	prefix := podruntime.ErrConfig.Error() + ": "
	for len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		msg = msg[len(prefix):]
	}
	return msg
}

// buildContainerConfig gathers the container's environment, mounts and
// files and builds its CRI configuration.
func (w *podWorker) buildContainerConfig(ctx context.Context, pod *v1.Pod, c *v1.Container, sb *podSandbox, rt *podruntime.PodState, imageRef string, restarts int32) (*runtimeapi.ContainerConfig, error) {
	m := w.m
	target, err := podruntime.PIDTarget(pod, c.Name, rt)
	if err != nil {
		return nil, err
	}
	services, err := m.servicesFor(pod)
	if err != nil {
		return nil, err
	}
	hostIPs := m.hostIPs()
	podIPs := sb.IPs
	if pod.Spec.HostNetwork {
		podIPs = hostIPs
	}
	env, err := podruntime.MakeEnv(ctx, podruntime.EnvInput{
		Pod: pod, Container: c, PodIPs: podIPs, HostIPs: hostIPs, Services: services,
		NodeCPUMilli: m.nodeCPU, NodeMemory: m.nodeMem, Objects: m.cfg.Client.CoreV1(),
	})
	if err != nil {
		return nil, err
	}
	term, err := podruntime.TermFile(m.cfg.RootDir, pod, c, restarts)
	if err != nil {
		return nil, err
	}
	hosts, err := podruntime.HostsFile(m.cfg.RootDir, pod, sb.IPs, m.cfg.Kubelet.ClusterDomain)
	if err != nil {
		return nil, err
	}
	return podruntime.ContainerConfig(podruntime.ContainerParams{
		Pod: pod, Container: c, RestartCount: restarts, ImageRef: imageRef, Env: env,
		Mounts: sb.Mounts, TermFile: term, HostsFile: hosts, PIDTarget: target,
	}, m.resourceParams(), m.cfg.RootDir)
}
