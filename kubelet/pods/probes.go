package pods

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// Defaults of probe fields, for pods that bypassed API defaulting.
const (
	defaultProbePeriod    = 10
	defaultProbeTimeout   = 1
	defaultProbeFailures  = 3
	defaultProbeSuccesses = 1
)

// probeKind is one of a container's three probes.
type probeKind int

const (
	liveness probeKind = iota
	readiness
	startup
)

// String names the kind the way the kubelet's events do.
func (k probeKind) String() string {
	switch k {
	case liveness:
		return "Liveness"
	case readiness:
		return "Readiness"
	default:
		return "Startup"
	}
}

// probeKey identifies the probe of one kind of one container instance: a
// restarted container is probed afresh.
type probeKey struct {
	containerID string
	kind        probeKind
}

// containerHealth is what the probes found of a running container instance.
type containerHealth struct {
	// Started tells that the startup probe succeeded.
	Started bool
	// Ready tells that the readiness probe holds the container ready.
	Ready bool
}

// probeKill asks the pod worker to stop a container its liveness or
// startup probe gave up on.
type probeKill struct {
	// Message is the Killing event's message.
	Message string
	// Grace is the stop's grace period in seconds.
	Grace int64
}

// probeTiming is how the manager spreads the first probes.
type probeTiming struct {
	// since is when the manager started: in the first period after it,
	// adopted containers' probes start at random points of their period
	// so that they do not all fire at once.
	since time.Time
	// jitter returns a random duration in [0, d).
	jitter func(d time.Duration) time.Duration
}

func randomJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// podProbes holds the probe workers of one pod and what they found. The
// pod worker starts and stops the probe workers; they report back here
// and wake the pod worker when a result changes what the pod shows or
// does.
type podProbes struct {
	mu      sync.Mutex
	workers map[probeKey]*probeWorker
	health  map[string]containerHealth
	kills   map[string]probeKill
}

func newPodProbes() *podProbes {
	return &podProbes{
		workers: map[probeKey]*probeWorker{},
		health:  map[string]containerHealth{},
		kills:   map[string]probeKill{},
	}
}

// snapshot returns the health of the probed containers by container ID.
func (p *podProbes) snapshot() map[string]containerHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]containerHealth, len(p.health))
	for id, h := range p.health {
		out[id] = h
	}
	return out
}

// takeKills returns and forgets the kills asked for.
func (p *podProbes) takeKills() map[string]probeKill {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.kills
	p.kills = map[string]probeKill{}
	return out
}

// set records a probe's result and tells whether it changed.
func (p *podProbes) set(k probeKey, ok bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.health[k.containerID]
	old := h
	switch k.kind {
	case readiness:
		h.Ready = ok
	case startup:
		h.Started = ok
	}
	p.health[k.containerID] = h
	return h != old
}

// started tells whether the container's startup probe succeeded.
func (p *podProbes) started(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.health[id].Started
}

// requestKill records that the container must be stopped.
func (p *podProbes) requestKill(id string, k probeKill) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kills[id] = k
}

// stopAll stops every probe worker and forgets every result.
func (p *podProbes) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, pw := range p.workers {
		close(pw.stop)
		delete(p.workers, k)
	}
	p.health = map[string]containerHealth{}
	p.kills = map[string]probeKill{}
}

// probedContainers returns the containers that may have probes: the
// regular ones and the sidecars.
func probedContainers(pod *v1.Pod) []*v1.Container {
	var out []*v1.Container
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; podruntime.IsSidecar(c) {
			out = append(out, c)
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

func probeOf(c *v1.Container, k probeKind) *v1.Probe {
	switch k {
	case liveness:
		return c.LivenessProbe
	case readiness:
		return c.ReadinessProbe
	default:
		return c.StartupProbe
	}
}

// syncProbes runs a probe worker per probe of every running container of
// the pod, and stops those of containers that no longer run.
func (w *podWorker) syncProbes(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) {
	type wanted struct {
		c   *v1.Container
		cur *podruntime.ContainerState
	}
	want := map[probeKey]wanted{}
	running := map[string]bool{}
	for _, c := range probedContainers(pod) {
		cur := rt.Current(c.Name)
		if cur == nil || !cur.Running() {
			continue
		}
		running[cur.ID] = true
		for _, k := range []probeKind{liveness, readiness, startup} {
			if probeOf(c, k) != nil {
				want[probeKey{cur.ID, k}] = wanted{c, cur}
			}
		}
	}
	podIP := w.podIP(pod, rt)
	p := w.probes
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, pw := range p.workers {
		if _, ok := want[k]; !ok {
			close(pw.stop)
			delete(p.workers, k)
		}
	}
	for id := range p.health {
		if !running[id] {
			delete(p.health, id)
			delete(p.kills, id)
		}
	}
	for k, x := range want {
		if _, ok := p.workers[k]; ok {
			continue
		}
		if _, killing := p.kills[k.containerID]; killing {
			continue
		}
		pw := newProbeWorker(w, pod, x.c, x.cur, k, podIP)
		p.workers[k] = pw
		w.m.wg.Add(1)
		go func() {
			defer w.m.wg.Done()
			pw.loop(ctx)
		}()
	}
}

// podIP is the pod's primary IP: the sandbox's, or the node's for a host
// network pod.
func (w *podWorker) podIP(pod *v1.Pod, rt *podruntime.PodState) string {
	if pod.Spec.HostNetwork {
		if ips := w.m.hostIPs(); len(ips) > 0 {
			return ips[0]
		}
		return ""
	}
	if sb := rt.NewestSandbox(); sb != nil && len(sb.IPs) > 0 {
		return sb.IPs[0]
	}
	return pod.Status.PodIP
}

// healthOf is what the status shows of a running container: started once
// its startup probe succeeded (at once without one), ready once started and
// its readiness probe succeeded (at once without one).
func healthOf(c *v1.Container, h containerHealth) (started, ready bool) {
	started = c.StartupProbe == nil || h.Started
	ready = started && (c.ReadinessProbe == nil || h.Ready)
	return started, ready
}

// killUnhealthy stops the running containers whose liveness or startup
// probe gave up on them; the restart policy then decides on their restart.
// It tells whether it stopped any.
func (w *podWorker) killUnhealthy(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState) (bool, error) {
	kills := w.probes.takeKills()
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
		if err := w.stopContainer(ctx, pod, c, k.Grace, k.Message); err != nil {
			errs = append(errs, err)
			// Ask again at the next sync.
			w.probes.requestKill(c.ID, k)
		}
	}
	if len(errs) > 0 {
		return true, fmt.Errorf("stop unhealthy containers: %w", errs[0])
	}
	return true, nil
}
