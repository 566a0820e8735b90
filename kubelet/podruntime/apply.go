package podruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Apply carries out one round of actions on the runtime.
func (p *Pod) Apply(ctx context.Context, pod *v1.Pod, rt *PodState, acts Actions, mounts map[string]string) error {
	if acts.KillPod {
		if err := p.KillPod(ctx, pod, rt, SpecGracePeriod(pod)); err != nil {
			return err
		}
	}
	if acts.Finished {
		for name := range p.Waiting {
			delete(p.Waiting, name)
		}
		return nil
	}
	var errs []error
	if len(acts.ContainersToKill) > 0 {
		var list []*ContainerState
		for _, c := range rt.Containers {
			if _, ok := acts.ContainersToKill[c.ID]; ok {
				list = append(list, c)
			}
		}
		for id, r := range acts.ContainersToKill {
			klog.FromContext(ctx).V(2).Info("Killing container", "containerID", id, "reason", r.Message)
		}
		errs = append(errs, p.stopContainers(ctx, pod, list, SpecGracePeriod(pod)))
	}
	sb, err := p.Sandbox(ctx, pod, rt, acts)
	if err != nil {
		return err
	}
	sb.Mounts = mounts
	// Ephemeral containers first, as the kubelet does: an init container
	// that fails to start must not keep a debugger out.
	errs = append(errs, p.startEphemeralContainers(ctx, pod, sb, rt, acts.EphemeralContainersToStart))
	for _, i := range acts.InitContainersToStart {
		c := &pod.Spec.InitContainers[i]
		if err := p.StartContainer(ctx, pod, sb, c, rt); err != nil {
			errs = append(errs, err)
			if !IsSidecar(c) || !Initialized(pod, rt) {
				return errors.Join(errs...)
			}
		}
	}
	for _, i := range acts.ContainersToStart {
		if err := p.StartContainer(ctx, pod, sb, &pod.Spec.Containers[i], rt); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// PodSandbox is the sandbox containers are started in.
type PodSandbox struct {
	ID     string
	Config *runtimeapi.PodSandboxConfig
	IPs    []string
	// Mounts are the host paths of the pod's volumes by name.
	Mounts map[string]string
}

// Sandbox returns the pod's sandbox, making a new one if asked to.
func (p *Pod) Sandbox(ctx context.Context, pod *v1.Pod, rt *PodState, acts Actions) (*PodSandbox, error) {
	attempt := acts.SandboxAttempt
	cur := rt.NewestSandbox()
	if !acts.CreateSandbox && cur != nil {
		attempt = cur.Attempt
	}
	cfg, err := p.sandboxConfig(ctx, pod, attempt, acts.CreateSandbox)
	if err != nil {
		p.r.recorder.Eventf(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		return nil, err
	}
	if !acts.CreateSandbox {
		if cur == nil {
			return nil, errors.New("pod has no sandbox")
		}
		return &PodSandbox{ID: cur.ID, Config: cfg, IPs: cur.IPs}, nil
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return nil, fmt.Errorf("create pod log directory: %w", err)
	}
	handler, err := p.r.runtimeHandler(ctx, pod)
	if err != nil {
		p.r.recorder.Eventf(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		return nil, err
	}
	select {
	case p.r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mark("sandboxSlot")
	id, err := p.r.runtime.RunPodSandbox(ctx, cfg, handler)
	<-p.r.slots
	if err != nil {
		p.r.recorder.Eventf(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		return nil, fmt.Errorf("run pod sandbox: %w", err)
	}
	klog.FromContext(ctx).V(2).Info("Created pod sandbox", "sandboxID", id, "attempt", attempt)
	st := &SandboxState{ID: id}
	if err := fillSandboxStatus(ctx, p.r.runtime, st); err != nil {
		return nil, err
	}
	p.mark("sandbox")
	return &PodSandbox{ID: id, Config: cfg, IPs: st.IPs}, nil
}

// runtimeHandler returns the CRI handler of the pod's RuntimeClass ("" for
// the runtime's default).
func (r *Runner) runtimeHandler(ctx context.Context, pod *v1.Pod) (string, error) {
	name := pod.Spec.RuntimeClassName
	if name == nil || *name == "" {
		return "", nil
	}
	rc, err := r.runtimeClasses.RuntimeClasses().Get(ctx, *name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("runtime class %q: %w", *name, err)
	}
	return rc.Handler, nil
}

// sandboxConfig builds the sandbox configuration with the node's settings;
// creating tells that the sandbox is being made (and DNS warnings are worth
// an event).
func (p *Pod) sandboxConfig(ctx context.Context, pod *v1.Pod, attempt uint32, creating bool) (*runtimeapi.PodSandboxConfig, error) {
	st := &p.r.settings
	host, err := p.r.hostDNS()
	if err != nil {
		return nil, err
	}
	dns, warning := dnsConfig(pod, clusterDNS{Servers: st.ClusterDNS, Domain: st.ClusterDomain}, host)
	if warning != "" && creating {
		klog.FromContext(ctx).V(2).Info("DNS configuration", "warning", warning)
		p.r.recorder.Event(pod, v1.EventTypeWarning, "DNSConfigForming", warning)
	}
	return SandboxConfig(pod, attempt, SandboxParams{
		RootDir:       st.RootDir,
		LogsDir:       st.PodLogsDir,
		CgroupRoot:    st.CgroupRoot,
		CgroupDriver:  st.CgroupDriver,
		CgroupsPerQOS: st.CgroupsPerQOS,
		ClusterDomain: st.ClusterDomain,
		DNS:           dns,
	})
}

// hostDNS reads the node's resolver configuration (none when unset).
func (r *Runner) hostDNS() (hostDNS, error) {
	path := r.settings.ResolverConfig
	if path == "" {
		return hostDNS{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return hostDNS{}, fmt.Errorf("read resolver configuration: %w", err)
	}
	defer f.Close()
	return parseResolvConf(f)
}

// KillPod stops the pod's running containers (regular ones first, then the
// sidecars) and its ready sandboxes.
func (p *Pod) KillPod(ctx context.Context, pod *v1.Pod, rt *PodState, grace int64) error {
	var regular, sidecars []*ContainerState
	for _, c := range rt.RunningContainers() {
		if pod != nil && isSidecarName(pod, c.Name) {
			sidecars = append(sidecars, c)
		} else {
			regular = append(regular, c)
		}
	}
	errs := []error{
		p.stopContainers(ctx, pod, regular, grace),
		p.stopContainers(ctx, pod, sidecars, grace),
	}
	for _, sb := range rt.Sandboxes {
		if !sb.Ready {
			continue
		}
		if err := p.r.runtime.StopPodSandbox(ctx, sb.ID); err != nil {
			errs = append(errs, fmt.Errorf("stop sandbox %s: %w", sb.ID, err))
		}
	}
	return errors.Join(errs...)
}

// stopContainers stops containers in parallel, each with the grace period:
// the runtime sends SIGTERM, then SIGKILL when the grace period is over.
func (p *Pod) stopContainers(ctx context.Context, pod *v1.Pod, list []*ContainerState, grace int64) error {
	var wg sync.WaitGroup
	errs := make([]error, len(list))
	for i, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.StopContainer(ctx, pod, c, grace, "")
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StopContainer stops one container within grace seconds, with a Killing
// event (message, or "Stopping container NAME") when the pod is known. Its
// preStop hook runs first and its time counts against the grace period.
func (p *Pod) StopContainer(ctx context.Context, pod *v1.Pod, c *ContainerState, grace int64, message string) error {
	if pod != nil {
		if message == "" {
			message = fmt.Sprintf("Stopping container %s", c.Name)
		}
		p.r.recorder.Event(pod, v1.EventTypeNormal, "Killing", message)
		if spec := ContainerSpec(pod, c.Name); spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil {
			grace = p.runPreStop(ctx, hookTarget{Pod: pod, Container: spec, ID: c.ID, PodIP: pod.Status.PodIP}, grace)
		}
	}
	if err := p.r.runtime.StopContainer(ctx, c.ID, grace); err != nil {
		return fmt.Errorf("stop container %s (%s): %w", c.Name, c.ID, err)
	}
	return nil
}
