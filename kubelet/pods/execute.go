package pods

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/berthnode/berth/kubelet/podruntime"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// apply carries out one round of actions on the runtime.
func (w *podWorker) apply(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState, acts podruntime.Actions, mounts map[string]string) error {
	if acts.KillPod {
		if err := w.killPod(ctx, pod, rt, podruntime.SpecGracePeriod(pod)); err != nil {
			return err
		}
	}
	if acts.Finished {
		for name := range w.state.waiting {
			delete(w.state.waiting, name)
		}
		return nil
	}
	var errs []error
	if len(acts.ContainersToKill) > 0 {
		var list []*podruntime.ContainerState
		for _, c := range rt.Containers {
			if _, ok := acts.ContainersToKill[c.ID]; ok {
				list = append(list, c)
			}
		}
		for id, r := range acts.ContainersToKill {
			klog.FromContext(ctx).V(2).Info("Killing container", "containerID", id, "reason", r.Message)
		}
		errs = append(errs, w.stopContainers(ctx, pod, list, podruntime.SpecGracePeriod(pod)))
	}
	sb, err := w.sandbox(ctx, pod, rt, acts)
	if err != nil {
		return err
	}
	sb.Mounts = mounts
	// Ephemeral containers first, as the kubelet does: an init container
	// that fails to start must not keep a debugger out.
	errs = append(errs, w.startEphemeralContainers(ctx, pod, sb, rt, acts.EphemeralContainersToStart))
	for _, i := range acts.InitContainersToStart {
		c := &pod.Spec.InitContainers[i]
		if err := w.startContainer(ctx, pod, sb, c, rt); err != nil {
			errs = append(errs, err)
			if !podruntime.IsSidecar(c) || !podruntime.Initialized(pod, rt) {
				return errors.Join(errs...)
			}
		}
	}
	for _, i := range acts.ContainersToStart {
		if err := w.startContainer(ctx, pod, sb, &pod.Spec.Containers[i], rt); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// podSandbox is the sandbox containers are started in.
type podSandbox struct {
	ID     string
	Config *runtimeapi.PodSandboxConfig
	IPs    []string
	// Mounts are the host paths of the pod's volumes by name.
	Mounts map[string]string
}

// sandbox returns the pod's sandbox, making a new one if asked to.
func (w *podWorker) sandbox(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState, acts podruntime.Actions) (*podSandbox, error) {
	attempt := acts.SandboxAttempt
	cur := rt.NewestSandbox()
	if !acts.CreateSandbox && cur != nil {
		attempt = cur.Attempt
	}
	cfg, err := w.sandboxConfig(ctx, pod, attempt, acts.CreateSandbox)
	if err != nil {
		w.m.cfg.Recorder.Eventf(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		return nil, err
	}
	if !acts.CreateSandbox {
		if cur == nil {
			return nil, errors.New("pod has no sandbox")
		}
		return &podSandbox{ID: cur.ID, Config: cfg, IPs: cur.IPs}, nil
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return nil, fmt.Errorf("create pod log directory: %w", err)
	}
	handler, err := w.m.runtimeHandler(ctx, pod)
	if err != nil {
		w.m.cfg.Recorder.Eventf(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		return nil, err
	}
	select {
	case w.m.sandboxSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w.state.trace.mark("sandboxSlot")
	id, err := w.m.cfg.Runtime.RunPodSandbox(ctx, cfg, handler)
	<-w.m.sandboxSlots
	if err != nil {
		w.m.cfg.Recorder.Eventf(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		return nil, fmt.Errorf("run pod sandbox: %w", err)
	}
	klog.FromContext(ctx).V(2).Info("Created pod sandbox", "sandboxID", id, "attempt", attempt)
	st := &podruntime.SandboxState{ID: id}
	if err := podruntime.FillSandboxStatus(ctx, w.m.cfg.Runtime, st); err != nil {
		return nil, err
	}
	w.state.trace.mark("sandbox")
	return &podSandbox{ID: id, Config: cfg, IPs: st.IPs}, nil
}

// runtimeHandler returns the CRI handler of the pod's RuntimeClass ("" for
// the runtime's default).
func (m *Manager) runtimeHandler(ctx context.Context, pod *v1.Pod) (string, error) {
	name := pod.Spec.RuntimeClassName
	if name == nil || *name == "" {
		return "", nil
	}
	rc, err := m.cfg.Client.NodeV1().RuntimeClasses().Get(ctx, *name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("runtime class %q: %w", *name, err)
	}
	return rc.Handler, nil
}

// sandboxConfig builds the sandbox configuration with the node's settings;
// creating tells that the sandbox is being made (and DNS warnings are worth
// an event).
func (w *podWorker) sandboxConfig(ctx context.Context, pod *v1.Pod, attempt uint32, creating bool) (*runtimeapi.PodSandboxConfig, error) {
	k := w.m.cfg.Kubelet
	host, err := w.m.hostDNS()
	if err != nil {
		return nil, err
	}
	dns, warning := podruntime.DNSConfig(pod, podruntime.ClusterDNS{Servers: k.ClusterDNS, Domain: k.ClusterDomain}, host)
	if warning != "" && creating {
		klog.FromContext(ctx).V(2).Info("DNS configuration", "warning", warning)
		w.m.cfg.Recorder.Event(pod, v1.EventTypeWarning, "DNSConfigForming", warning)
	}
	return podruntime.SandboxConfig(pod, attempt, podruntime.SandboxParams{
		RootDir:       w.m.cfg.RootDir,
		LogsDir:       w.m.cfg.PodLogsDir,
		CgroupRoot:    k.CgroupRoot,
		CgroupDriver:  k.CgroupDriver,
		CgroupsPerQOS: w.m.cfg.cgroupsPerQOS(),
		ClusterDomain: k.ClusterDomain,
		DNS:           dns,
	})
}

// hostDNS reads the node's resolver configuration (none when unset).
func (m *Manager) hostDNS() (podruntime.HostDNS, error) {
	p := m.cfg.Kubelet.ResolverConfig
	if p == nil || *p == "" {
		return podruntime.HostDNS{}, nil
	}
	f, err := os.Open(*p)
	if err != nil {
		return podruntime.HostDNS{}, fmt.Errorf("read resolver configuration: %w", err)
	}
	defer f.Close()
	return podruntime.ParseResolvConf(f)
}

// killPod stops the pod's running containers (regular ones first, then the
// sidecars) and its ready sandboxes.
func (w *podWorker) killPod(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState, grace int64) error {
	var regular, sidecars []*podruntime.ContainerState
	for _, c := range rt.RunningContainers() {
		if pod != nil && podruntime.IsSidecarName(pod, c.Name) {
			sidecars = append(sidecars, c)
		} else {
			regular = append(regular, c)
		}
	}
	errs := []error{
		w.stopContainers(ctx, pod, regular, grace),
		w.stopContainers(ctx, pod, sidecars, grace),
	}
	for _, sb := range rt.Sandboxes {
		if !sb.Ready {
			continue
		}
		if err := w.m.cfg.Runtime.StopPodSandbox(ctx, sb.ID); err != nil {
			errs = append(errs, fmt.Errorf("stop sandbox %s: %w", sb.ID, err))
		}
	}
	return errors.Join(errs...)
}

// stopContainers stops containers in parallel, each with the grace period:
// the runtime sends SIGTERM, then SIGKILL when the grace period is over.
func (w *podWorker) stopContainers(ctx context.Context, pod *v1.Pod, list []*podruntime.ContainerState, grace int64) error {
	var wg sync.WaitGroup
	errs := make([]error, len(list))
	for i, c := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.stopContainer(ctx, pod, c, grace, "")
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopContainer stops one container within grace seconds, with a Killing
// event (message, or "Stopping container NAME") when the pod is known. Its
// preStop hook runs first and its time counts against the grace period.
func (w *podWorker) stopContainer(ctx context.Context, pod *v1.Pod, c *podruntime.ContainerState, grace int64, message string) error {
	if pod != nil {
		if message == "" {
			message = fmt.Sprintf("Stopping container %s", c.Name)
		}
		w.m.cfg.Recorder.Event(pod, v1.EventTypeNormal, "Killing", message)
		if spec := containerSpec(pod, c.Name); spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil {
			grace = w.runPreStop(ctx, hookTarget{Pod: pod, Container: spec, ID: c.ID, PodIP: pod.Status.PodIP}, grace)
		}
	}
	if err := w.m.cfg.Runtime.StopContainer(ctx, c.ID, grace); err != nil {
		return fmt.Errorf("stop container %s (%s): %w", c.Name, c.ID, err)
	}
	return nil
}
