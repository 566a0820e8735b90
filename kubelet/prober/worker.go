package prober

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/probe"
)

// worker runs one probe of one container instance periodically, the
// way the kubelet's probe workers do: the first probe once the initial
// delay has passed, then one per period; a result counts once it came
// successThreshold (or failureThreshold) times in a row. Liveness and
// readiness wait for the startup probe. It belongs to its goroutine; it
// talks to the pod worker through Pod and its wake function.
type worker struct {
	p         *Pod
	key       key
	pod       *v1.Pod
	container *v1.Container
	spec      v1.Probe
	startedAt time.Time
	podIP     string
	stop      chan struct{}
	// lastOK and run are the last result and how many times in a row it
	// came (run 0: no result yet).
	lastOK bool
	run    int
}

func newWorker(p *Pod, pod *v1.Pod, c *v1.Container, cur *podruntime.ContainerState, k key, podIP string) *worker {
	spec := *probeOf(c, k.kind)
	if spec.PeriodSeconds <= 0 {
		spec.PeriodSeconds = defaultProbePeriod
	}
	if spec.TimeoutSeconds <= 0 {
		spec.TimeoutSeconds = defaultProbeTimeout
	}
	if spec.FailureThreshold <= 0 {
		spec.FailureThreshold = defaultProbeFailures
	}
	if spec.SuccessThreshold <= 0 || k.kind != Readiness {
		// Only readiness may ask for more than one success.
		spec.SuccessThreshold = defaultProbeSuccesses
	}
	return &worker{
		p: p, key: k, pod: pod, container: c, spec: spec,
		startedAt: cur.StartedAt, podIP: podIP, stop: make(chan struct{}),
	}
}

// firstWait is how long until the first probe: the rest of the initial
// delay, plus a random part of the period while the manager has just
// started (it adopts running containers, whose probes would all fire at
// once).
func (pw *worker) firstWait() time.Duration {
	cfg := pw.p.cfg
	now := cfg.Clock.Now()
	period := time.Duration(pw.spec.PeriodSeconds) * time.Second
	wait := time.Duration(0)
	if !pw.startedAt.IsZero() {
		wait = max(0, pw.startedAt.Add(time.Duration(pw.spec.InitialDelaySeconds)*time.Second).Sub(now))
	}
	if now.Sub(cfg.Since) < period {
		wait += cfg.jitter(period)
	}
	return wait
}

// loop probes until stopped, ctx is done or the probe gave up on the
// container.
func (pw *worker) loop(ctx context.Context) {
	logger := klog.FromContext(ctx).WithValues("container", pw.container.Name, "probe", pw.key.kind.String())
	ctx = klog.NewContext(ctx, logger)
	clock := pw.p.cfg.Clock
	wait := pw.firstWait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-pw.stop:
			return
		case <-clock.After(wait):
		}
		if !pw.step(ctx) {
			logger.V(4).Info("Probe worker done")
			return
		}
		wait = time.Duration(pw.spec.PeriodSeconds) * time.Second
	}
}

// step runs the probe once if it is due and acts on the result; false
// stops the worker.
func (pw *worker) step(ctx context.Context) bool {
	probes := pw.p
	gated := pw.container.StartupProbe != nil && !probes.started(pw.key.containerID)
	switch {
	case pw.key.kind == Startup && !gated:
		// Started: the startup probe is done for this instance.
		return false
	case pw.key.kind != Startup && gated:
		return true
	}
	ok := pw.probe(ctx)
	if pw.run > 0 && ok == pw.lastOK {
		pw.run++
	} else {
		pw.lastOK, pw.run = ok, 1
	}
	if (ok && pw.run < int(pw.spec.SuccessThreshold)) || (!ok && pw.run < int(pw.spec.FailureThreshold)) {
		return true
	}
	if probes.set(pw.key, ok) {
		pw.p.wake()
	}
	if ok || pw.key.kind == Readiness {
		return true
	}
	// Liveness or startup gave up: the pod worker stops the container, and
	// the next instance gets new probe workers.
	probes.RequestKill(pw.key.containerID, Kill{Message: pw.killMessage(), Grace: pw.killGrace()})
	pw.p.wake()
	return false
}

// probe runs the probe once, emits the kubelet's events about a failure,
// and tells whether it succeeded.
func (pw *worker) probe(ctx context.Context) bool {
	cfg := pw.p.cfg
	target := probe.Target{Runtime: cfg.Runtime, ContainerID: pw.key.containerID, Container: pw.container, PodIP: pw.podIP}
	timeout := time.Duration(pw.spec.TimeoutSeconds) * time.Second
	res, out, err := probe.Run(ctx, target, &pw.spec.ProbeHandler, timeout)
	kind := pw.key.kind.String()
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return pw.lastOK
		}
		klog.FromContext(ctx).V(1).Info("Probe errored", "err", err)
		cfg.Recorder.Eventf(pw.pod, v1.EventTypeWarning, "Unhealthy", "%s probe errored: %v", kind, err)
		return false
	case res == probe.Failure:
		klog.FromContext(ctx).V(1).Info("Probe failed", "output", out)
		cfg.Recorder.Eventf(pw.pod, v1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, out)
		return false
	case res == probe.Warning:
		cfg.Recorder.Eventf(pw.pod, v1.EventTypeWarning, "ProbeWarning", "%s probe warning: %s", kind, out)
	}
	return true
}

// killMessage is the Killing event's message of a container the probe gave
// up on.
func (pw *worker) killMessage() string {
	msg := fmt.Sprintf("Container %s failed %s probe", pw.container.Name, map[Kind]string{Liveness: "liveness", Startup: "startup"}[pw.key.kind])
	if pw.pod.Spec.RestartPolicy != v1.RestartPolicyNever || podruntime.IsSidecar(pw.container) {
		msg += ", will be restarted"
	}
	return msg
}

// killGrace is the probe's grace period if it has one, else the pod's.
func (pw *worker) killGrace() int64 {
	if g := pw.spec.TerminationGracePeriodSeconds; g != nil {
		return max(*g, podruntime.MinGracePeriod)
	}
	return podruntime.SpecGracePeriod(pw.pod)
}
