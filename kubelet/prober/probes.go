package prober

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	internalapi "k8s.io/cri-api/pkg/apis"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/kubelet/podruntime"
)

// Defaults of probe fields, for pods that bypassed API defaulting.
const (
	defaultProbePeriod    = 10
	defaultProbeTimeout   = 1
	defaultProbeFailures  = 3
	defaultProbeSuccesses = 1
)

// Kind is one of a container's three probes.
type Kind int

// The three probes of a container.
const (
	Liveness Kind = iota
	Readiness
	Startup
)

// String names the kind the way the kubelet's events do.
func (k Kind) String() string {
	switch k {
	case Liveness:
		return "Liveness"
	case Readiness:
		return "Readiness"
	default:
		return "Startup"
	}
}

// key identifies the probe of one kind of one container instance: a
// restarted container is probed afresh.
type key struct {
	containerID string
	kind        Kind
}

// Health is what the probes found of a running container instance.
type Health struct {
	// Started tells that the startup probe succeeded.
	Started bool
	// Ready tells that the readiness probe holds the container ready.
	Ready bool
}

// Kill asks the pod worker to stop a container its liveness or startup
// probe gave up on.
type Kill struct {
	// Message is the Killing event's message.
	Message string
	// Grace is the stop's grace period in seconds.
	Grace int64
}

// Config is what the probe workers of every pod share.
type Config struct {
	// Runtime runs exec probes (ExecSync).
	Runtime internalapi.RuntimeService
	// Recorder emits the Unhealthy and ProbeWarning events.
	Recorder record.EventRecorder
	// Clock times the probes.
	Clock clock.Clock
	// Since is when the pod controller started: in the first period after
	// it, adopted containers' probes start at random points of their
	// period so that they do not all fire at once. Set it before the first
	// Sync.
	Since time.Time
	// Jitter returns a random duration in [0, d); RandomJitter when nil.
	Jitter func(d time.Duration) time.Duration
	// Go runs a probe worker's loop on a goroutine its owner waits for;
	// a plain go statement when nil.
	Go func(loop func())
}

// RandomJitter returns a random duration in [0, d).
func RandomJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

func (c *Config) jitter(d time.Duration) time.Duration {
	if c.Jitter == nil {
		return RandomJitter(d)
	}
	return c.Jitter(d)
}

func (c *Config) goRun(loop func()) {
	if c.Go == nil {
		go loop()
		return
	}
	c.Go(loop)
}

// Pod holds the probe workers of one pod and what they found. The pod
// worker starts and stops the probe workers (Sync, StopAll); they report
// back here and call wake when a result changes what the pod shows or
// does.
type Pod struct {
	cfg  *Config
	wake func()

	mu      sync.Mutex
	workers map[key]*worker
	health  map[string]Health
	kills   map[string]Kill
}

// NewPod returns the prober of one pod; wake must not block.
func NewPod(cfg *Config, wake func()) *Pod {
	return &Pod{
		cfg:     cfg,
		wake:    wake,
		workers: map[key]*worker{},
		health:  map[string]Health{},
		kills:   map[string]Kill{},
	}
}

// Health returns the health of the probed containers by container ID.
func (p *Pod) Health() map[string]Health {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]Health, len(p.health))
	for id, h := range p.health {
		out[id] = h
	}
	return out
}

// TakeKills returns and forgets the kills asked for, by container ID.
func (p *Pod) TakeKills() map[string]Kill {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.kills
	p.kills = map[string]Kill{}
	return out
}

// Workers is the number of probe workers running.
func (p *Pod) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.workers)
}

// set records a probe's result and tells whether it changed.
func (p *Pod) set(k key, ok bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.health[k.containerID]
	old := h
	switch k.kind {
	case Readiness:
		h.Ready = ok
	case Startup:
		h.Started = ok
	}
	p.health[k.containerID] = h
	return h != old
}

// started tells whether the container's startup probe succeeded.
func (p *Pod) started(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.health[id].Started
}

// RequestKill records that the container must be stopped.
func (p *Pod) RequestKill(id string, k Kill) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kills[id] = k
}

// StopAll stops every probe worker and forgets every result.
func (p *Pod) StopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, pw := range p.workers {
		close(pw.stop)
		delete(p.workers, k)
	}
	p.health = map[string]Health{}
	p.kills = map[string]Kill{}
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

func probeOf(c *v1.Container, k Kind) *v1.Probe {
	switch k {
	case Liveness:
		return c.LivenessProbe
	case Readiness:
		return c.ReadinessProbe
	default:
		return c.StartupProbe
	}
}

// Sync runs a probe worker per probe of every running container of the
// pod, and stops those of containers that no longer run. podIP is the
// address network probes go to.
func (p *Pod) Sync(ctx context.Context, pod *v1.Pod, rt *podruntime.PodState, podIP string) {
	type wanted struct {
		c   *v1.Container
		cur *podruntime.ContainerState
	}
	want := map[key]wanted{}
	running := map[string]bool{}
	for _, c := range probedContainers(pod) {
		cur := rt.Current(c.Name)
		if cur == nil || !cur.Running() {
			continue
		}
		running[cur.ID] = true
		for _, k := range []Kind{Liveness, Readiness, Startup} {
			if probeOf(c, k) != nil {
				want[key{cur.ID, k}] = wanted{c, cur}
			}
		}
	}
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
		pw := newWorker(p, pod, x.c, x.cur, k, podIP)
		p.workers[k] = pw
		p.cfg.goRun(func() { pw.loop(ctx) })
	}
}

// HealthOf is what the status shows of a running container: started once
// its startup probe succeeded (at once without one), ready once started and
// its readiness probe succeeded (at once without one).
func HealthOf(c *v1.Container, h Health) (started, ready bool) {
	started = c.StartupProbe == nil || h.Started
	ready = started && (c.ReadinessProbe == nil || h.Ready)
	return started, ready
}
