package podruntime

import (
	"context"
	"errors"
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// StartContainer pulls, creates and starts one container in the sandbox. A
// failure is recorded as the container's waiting reason with an event.
func (p *Pod) StartContainer(ctx context.Context, pod *v1.Pod, sb *PodSandbox, c *v1.Container, rt *PodState) error {
	if cur := rt.Current(c.Name); cur != nil && cur.SandboxID == sb.ID {
		// A restart in the same sandbox: the next one waits longer unless
		// this one runs long.
		p.Crash.Next(c.Name, ExitTime(cur))
	}
	restarts := rt.NextRestartCount(c.Name)
	imageRef, img, err := p.EnsureImage(ctx, pod, c, sb.Config)
	if err != nil {
		if ie, ok := IsImageError(err); ok {
			return p.failed(c, ie.Reason, ie.Message, err)
		}
		return p.failed(c, ReasonErrImagePull, shortError(err), err)
	}
	p.mark("image")
	if err := verifyNonRoot(pod, c, img); err != nil {
		p.r.recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %v", trimConfigErr(err))
		return p.failed(c, ReasonCreateConfigError, trimConfigErr(err), err)
	}
	cfg, err := p.buildContainerConfig(ctx, pod, c, sb, rt, imageRef, restarts)
	if err != nil {
		reason := ReasonCreateConfigError
		if !errors.Is(err, ErrConfig) {
			reason = ReasonCreateError
		}
		p.r.recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %v", trimConfigErr(err))
		return p.failed(c, reason, trimConfigErr(err), err)
	}
	if err := os.MkdirAll(containerLogDir(sb.Config.LogDirectory, c.Name), 0o755); err != nil {
		return p.failed(c, ReasonCreateError, err.Error(), fmt.Errorf("create container log directory: %w", err))
	}
	id, err := p.r.runtime.CreateContainer(ctx, sb.ID, cfg, sb.Config)
	if err != nil {
		p.r.recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return p.failed(c, ReasonCreateError, shortError(err), fmt.Errorf("create container %s: %w", c.Name, err))
	}
	p.mark("created")
	p.r.recorder.Eventf(pod, v1.EventTypeNormal, "Created", "Created container: %s", c.Name)
	if err := p.r.runtime.StartContainer(ctx, id); err != nil {
		p.r.recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return p.failed(c, ReasonRunError, shortError(err), fmt.Errorf("start container %s: %w", c.Name, err))
	}
	p.mark("started")
	p.r.recorder.Eventf(pod, v1.EventTypeNormal, "Started", "Started container %s", c.Name)
	klog.FromContext(ctx).V(2).Info("Started container", "container", c.Name, "containerID", id, "restartCount", restarts)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		podIP := ""
		if len(sb.IPs) > 0 {
			podIP = sb.IPs[0]
		}
		if pod.Spec.HostNetwork {
			if ips := p.r.hostIPs(); len(ips) > 0 {
				podIP = ips[0]
			}
		}
		if err := p.runPostStart(ctx, hookTarget{Pod: pod, Container: c, ID: id, PodIP: podIP}); err != nil {
			return err
		}
	}
	delete(p.Waiting, c.Name)
	return nil
}

// failed records why a container does not start and returns err.
func (p *Pod) failed(c *v1.Container, reason, msg string, err error) error {
	p.Waiting[c.Name] = WaitingReason{Reason: reason, Message: msg}
	return err
}

// trimConfigErr drops the errConfig marker from a message.
func trimConfigErr(err error) string {
	msg := err.Error()
	prefix := ErrConfig.Error() + ": "
	for len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		msg = msg[len(prefix):]
	}
	return msg
}

// buildContainerConfig gathers the container's environment, mounts and
// files and builds its CRI configuration.
func (p *Pod) buildContainerConfig(ctx context.Context, pod *v1.Pod, c *v1.Container, sb *PodSandbox, rt *PodState, imageRef string, restarts int32) (*runtimeapi.ContainerConfig, error) {
	r := p.r
	target, err := PIDTarget(pod, c.Name, rt)
	if err != nil {
		return nil, err
	}
	services, err := r.services(pod)
	if err != nil {
		return nil, err
	}
	hostIPs := r.hostIPs()
	podIPs := sb.IPs
	if pod.Spec.HostNetwork {
		podIPs = hostIPs
	}
	env, err := makeEnv(ctx, envInput{
		Pod: pod, Container: c, PodIPs: podIPs, HostIPs: hostIPs, Services: services,
		NodeCPUMilli: r.settings.NodeCPUMilli, NodeMemory: r.settings.NodeMemory, Objects: r.objects,
	})
	if err != nil {
		return nil, err
	}
	term, err := TermFile(r.settings.RootDir, pod, c, restarts)
	if err != nil {
		return nil, err
	}
	hosts, err := HostsFile(r.settings.RootDir, pod, sb.IPs, r.settings.ClusterDomain)
	if err != nil {
		return nil, err
	}
	devs, err := r.containerDevices(ctx, pod, c)
	if err != nil {
		return nil, err
	}
	cfg, err := ContainerConfig(ContainerParams{
		Pod: pod, Container: c, RestartCount: restarts, ImageRef: imageRef, Env: env,
		Mounts: sb.Mounts, TermFile: term, HostsFile: hosts, PIDTarget: target,
	}, r.settings.Resources, r.settings.RootDir)
	if err != nil {
		return nil, err
	}
	addDevices(cfg, devs)
	return cfg, nil
}
