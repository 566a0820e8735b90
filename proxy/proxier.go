package proxy

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/proxy/healthcheck"
	"github.com/berthnode/berth/proxy/metrics"
	"github.com/berthnode/berth/proxy/runner"
)

// Sync period defaults, kube-proxy's.
const (
	DefaultMinSyncPeriod = time.Second
	DefaultSyncPeriod    = 30 * time.Second
)

// Errors of Ready and Healthy.
var (
	// ErrNotSynced: no sync has succeeded yet.
	ErrNotSynced = errors.New("proxy rules not synced yet")
	// ErrStale: a change has waited too long to be synced.
	ErrStale = errors.New("proxy rules are stale")
)

// ServiceHealth serves the health-check node ports of
// externalTrafficPolicy: Local services; healthcheck.ServiceServer
// implements it.
type ServiceHealth interface {
	// SyncServices sets the ports to serve: service to its health-check
	// node port.
	SyncServices(ctx context.Context, ports map[types.NamespacedName]uint16) error
	// SyncEndpoints sets each service's number of ready local endpoints.
	SyncEndpoints(counts map[types.NamespacedName]int) error
}

// Config configures a Proxier.
type Config struct {
	// NodeName is this node's name.
	NodeName string
	// Informers is the factory of the Service and EndpointSlice informers
	// (and of the Node informer when NodeInformers is nil). Run starts it.
	Informers informers.SharedInformerFactory
	// NodeInformers, if set, is the factory of the Node informer, e.g. one
	// limited to this node by a field selector.
	NodeInformers informers.SharedInformerFactory
	// Backends program each family's State; one per family in
	// Options.Families (which defaults to the families of Backends).
	Backends map[Family]Backend
	// Options are passed to Compute; Options.NodeName defaults to NodeName.
	Options Options
	// Recorder, if set, gets a Warning Event on a Service for each distinct
	// Problem of it.
	Recorder record.EventRecorder
	// Conntrack, if set, clears stale UDP flows after each sync.
	Conntrack Conntrack
	// ServiceHealth, if set, serves health-check node ports.
	ServiceHealth ServiceHealth
	// Metrics, if set, records the kube-proxy metrics.
	Metrics *metrics.Metrics
	// MinSyncPeriod is the least time between syncs (default 1 s); changes
	// within it are batched.
	MinSyncPeriod time.Duration
	// SyncPeriod is the most time between syncs (default 30 s; full ones
	// come every FullSyncPeriod); a failed sync is retried after it, as in
	// kube-proxy, and an update waiting twice as long makes the proxy
	// unhealthy.
	SyncPeriod time.Duration
	// Clock is the time source; default the real clock.
	Clock clock.Clock
}

// Validate checks the configuration (after defaulting).
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("nodeName is required"))
	}
	if c.Informers == nil {
		errs = append(errs, errors.New("informers are required"))
	}
	if c.Options.NodeName != c.NodeName {
		errs = append(errs, fmt.Errorf("options.nodeName %q differs from nodeName %q", c.Options.NodeName, c.NodeName))
	}
	if err := c.Options.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("options: %w", err))
	}
	for _, f := range c.Options.Families {
		if c.Backends[f] == nil {
			errs = append(errs, fmt.Errorf("no backend for IPv%d", f))
		}
	}
	if c.MinSyncPeriod < 0 {
		errs = append(errs, fmt.Errorf("minSyncPeriod %v is negative", c.MinSyncPeriod))
	}
	if c.SyncPeriod <= 0 || c.SyncPeriod < c.MinSyncPeriod {
		errs = append(errs, fmt.Errorf("syncPeriod %v must be positive and at least minSyncPeriod %v", c.SyncPeriod, c.MinSyncPeriod))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.NodeInformers == nil {
		c.NodeInformers = c.Informers
	}
	if c.Options.NodeName == "" {
		c.Options.NodeName = c.NodeName
	}
	if len(c.Options.Families) == 0 {
		for f := range c.Backends {
			c.Options.Families = append(c.Options.Families, f)
		}
		slices.Sort(c.Options.Families)
	}
	if c.MinSyncPeriod == 0 {
		c.MinSyncPeriod = DefaultMinSyncPeriod
	}
	if c.SyncPeriod == 0 {
		c.SyncPeriod = DefaultSyncPeriod
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
}

// Proxier is berth's kube-proxy loop: informer events are recorded by a
// change tracker, and a bounded-frequency runner syncs: snapshot, Compute,
// diff against what each backend last applied, Backend.Sync, conntrack
// cleanup, health checks, Events for bad input.
type Proxier struct {
	cfg       Config
	tracker   *changeTracker
	runner    *runner.Runner
	hasSynced []cache.InformerSynced
	freshness *healthcheck.Freshness
	ready     atomic.Bool
	// informersSynced is closed once the informers have their initial
	// lists, before the first sync.
	informersSynced chan struct{}

	// The fields below belong to the sync loop.
	state *syncState
}

// syncState is what the sync loop remembers between syncs.
type syncState struct {
	// computer computes the States, incrementally.
	computer *Computer
	// applied is the State each backend last synced successfully.
	applied map[Family]*State
	// needFull marks families whose next sync must be full (after an
	// error); lastFull is when each family's last full sync started.
	needFull map[Family]bool
	lastFull map[Family]time.Time
	// triggers are the changes not yet applied, with their trigger times.
	triggers map[types.NamespacedName]time.Time
	// reported are the Problems already reported per service.
	reported map[types.NamespacedName]map[Problem]bool
	// gc follows the size of the state.
	gc gcFollower
}

// NewProxier returns a Proxier and registers its informer handlers; the
// caller may start the factories (Run does too).
func NewProxier(cfg Config) (*Proxier, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxier: %w", err)
	}
	p := &Proxier{
		cfg:             cfg,
		freshness:       healthcheck.NewFreshness(2*cfg.SyncPeriod, cfg.Clock),
		informersSynced: make(chan struct{}),
		state: &syncState{
			computer: NewComputer(cfg.Options),
			applied:  map[Family]*State{},
			needFull: map[Family]bool{},
			lastFull: map[Family]time.Time{},
			triggers: map[types.NamespacedName]time.Time{},
			reported: map[types.NamespacedName]map[Problem]bool{},
		},
	}
	r, err := runner.New(runner.Config{
		Name:          "proxy-rules",
		Func:          p.sync,
		MinInterval:   cfg.MinSyncPeriod,
		MaxInterval:   cfg.SyncPeriod,
		RetryInterval: cfg.SyncPeriod,
		Clock:         cfg.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("proxier: %w", err)
	}
	p.runner = r
	p.tracker = newChangeTracker(cfg.NodeName, p.queue)
	p.hasSynced, err = p.tracker.register(
		cfg.Informers.Core().V1().Services().Informer(),
		cfg.Informers.Discovery().V1().EndpointSlices().Informer(),
		cfg.NodeInformers.Core().V1().Nodes().Informer(),
	)
	if err != nil {
		return nil, fmt.Errorf("proxier: %w", err)
	}
	return p, nil
}

// NodeInformerFactory returns an informer factory limited to the Node
// named nodeName, for Config.NodeInformers: the proxy needs no other node.
func NodeInformerFactory(client kubernetes.Interface, nodeName string) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", nodeName).String()
	}))
}

// queue is called by the tracker on every change.
func (p *Proxier) queue() {
	p.freshness.QueuedUpdate()
	p.runner.Trigger()
}

// Run starts the informers, waits for their initial lists, then syncs
// until ctx ends. It returns nil when ctx ends.
func (p *Proxier) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	p.cfg.Informers.Start(ctx.Done())
	p.cfg.NodeInformers.Start(ctx.Done())
	logger.Info("Waiting for service proxy informers")
	if !cache.WaitForCacheSync(ctx.Done(), p.hasSynced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("proxier: informers did not sync")
	}
	close(p.informersSynced)
	p.runner.Trigger()
	return p.runner.Run(ctx)
}

// InformersSynced is closed once the informers hold their initial lists:
// the first sync starts right after.
func (p *Proxier) InformersSynced() <-chan struct{} { return p.informersSynced }

// Ready returns nil once a sync has succeeded.
func (p *Proxier) Ready() error {
	if !p.ready.Load() {
		return ErrNotSynced
	}
	return nil
}

// Healthy returns nil unless a change has waited longer than twice the
// sync period to be synced (kube-proxy's healthz rule).
func (p *Proxier) Healthy() error {
	if st := p.freshness.Status(); !st.Healthy {
		return fmt.Errorf("%w: last successful sync at %v", ErrStale, st.LastUpdated)
	}
	return nil
}

// Health implements healthcheck.Source.
func (p *Proxier) Health() healthcheck.Status { return p.freshness.Status() }

// autoscalerDeletionTaint is the taint the cluster autoscaler puts on a
// node it is about to delete.
const autoscalerDeletionTaint = "ToBeDeletedByClusterAutoscaler"

// NodeEligible implements healthcheck.Source: load balancers should stop
// sending traffic to a node that is gone, being deleted, or about to be.
func (p *Proxier) NodeEligible() bool {
	node := p.tracker.currentNode()
	if node == nil || node.DeletionTimestamp != nil {
		return false
	}
	for _, t := range node.Spec.Taints {
		if t.Key == autoscalerDeletionTaint {
			return false
		}
	}
	return true
}

// sync is one run of the loop.
func (p *Proxier) sync(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	// A sync that keeps failing must turn the proxy unhealthy even when no
	// event queued anything.
	p.freshness.QueuedUpdate()
	start := p.cfg.Clock.Now()
	snap, changes := p.tracker.snapshot()
	p.state.gc.follow(len(snap.Services))
	for name, t := range changes.Services {
		if prev, ok := p.state.triggers[name]; !ok || (!t.IsZero() && (prev.IsZero() || t.Before(prev))) {
			p.state.triggers[name] = t
		}
	}
	names := make(map[types.NamespacedName]bool, len(changes.Services))
	for name := range changes.Services {
		names[name] = true
	}
	states, problems, diffs := p.state.computer.Update(snap, names, changes.Node)
	p.report(ctx, snap, problems)

	var errs []error
	for _, f := range p.cfg.Options.Families {
		if err := p.syncFamily(ctx, f, states[f], diffs[f]); err != nil {
			errs = append(errs, err)
		}
	}
	p.syncHealthChecks(ctx, states)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	p.observeProgramming()
	p.freshness.Updated()
	p.ready.Store(true)
	logger.V(4).Info("Synced proxy rules", "took", p.cfg.Clock.Since(start), "changedServices", len(changes.Services))
	return nil
}

// bigState is the number of services from which a full sync hands its
// memory back to the kernel as it ends.
const bigState = 2000

// tightState is the number of services from which the proxy keeps the GOGC
// at bigStateGCPercent. Below it berth's usual GOGC of 50 keeps the peak
// RSS under 120 MiB (5,000 services: 102 MiB), and an endpoint change,
// whose sync allocates a few MB, does not start a collection; measured at
// 5,000 services with GOGC 10, collections and their assists made a flip
// 15-25 ms slower.
const tightState = 7000

// bigStateGCPercent is the GOGC from tightState services on. At berth's
// usual 50 the heap grows to 1.5 times what is live before the collector
// runs, and the runtime keeps 10 % more than that mapped; with 10,000
// services about 75 MiB are live (informer objects, computed state, the
// renderer's memory) and every sync adds its garbage: the headroom alone
// would be 45 MiB. At 10 the heap stays within 1.1 times what is live.
// Measured at 10,000 services (proxybench): peak RSS 150.5 MiB at GOGC 20,
// 136.0 at 10; the cold start's own CPU 21 s → 29 s (beside 465 s of
// iptables-restore), services arriving one by one 11 s → 14 s over 2.5
// minutes.
const bigStateGCPercent = 10

// gcFollower sets the GOGC to bigStateGCPercent while the state has
// tightState services or more, and back when it has fewer, unless the GOGC
// was tighter already (or off: the operator's choice). It is changed only
// when the state crosses tightState: lowering it under a heap already
// above the lower goal starts a collection at once.
type gcFollower struct {
	tight bool
	prev  int
}

// follow adjusts the GOGC to a state of n services.
func (g *gcFollower) follow(n int) {
	switch big := n >= tightState; {
	case big && !g.tight:
		g.prev = debug.SetGCPercent(bigStateGCPercent)
		if g.prev < bigStateGCPercent {
			debug.SetGCPercent(g.prev)
		}
		g.tight = true
	case !big && g.tight:
		if g.prev >= bigStateGCPercent {
			debug.SetGCPercent(g.prev)
		}
		g.tight = false
	}
}

// FullSyncPeriod is the most time between full syncs, which rewrite every
// service's rules (and so repair any drift). The syncs every SyncPeriod in
// between are partial, as with kube-proxy: on a large node a full sync can
// take longer than SyncPeriod, and forcing one every SyncPeriod would make
// every sync full and every endpoint change wait for it.
const FullSyncPeriod = time.Hour

// syncFamily brings one family's backend to st: full when the family
// needs it (first sync, after an error, every FullSyncPeriod, when the
// globals changed), else only the changed service ports (diff, relative to
// the previous sync's State), and not at all when nothing changed.
func (p *Proxier) syncFamily(ctx context.Context, f Family, st *State, diff map[string]bool) error {
	logger := klog.FromContext(ctx).WithValues("family", familyLabel(f))
	s := p.state
	prev := s.applied[f]
	start := p.cfg.Clock.Now()
	full := prev == nil || diff == nil || s.needFull[f] || start.Sub(s.lastFull[f]) >= FullSyncPeriod || !sameGlobals(prev, st)
	var changed map[string]bool
	if !full {
		changed = diff
		if len(changed) == 0 {
			return nil
		}
	}
	res, err := p.cfg.Backends[f].Sync(ctx, st, changed)
	took := p.cfg.Clock.Since(start)
	if err != nil {
		s.needFull[f] = true
		logger.Error(err, "Syncing proxy rules failed; the next sync will be full", "full", full)
		return fmt.Errorf("sync %s rules: %w", familyLabel(f), err)
	}
	s.needFull[f] = false
	if full {
		s.lastFull[f] = start
	}
	s.applied[f] = st
	if full && len(st.Services) >= bigState {
		// What the full sync held (every service's plan, the payload) is
		// garbage now: hand its pages back at once rather than keep them
		// for the next full sync, an hour away.
		defer debug.FreeOSMemory()
	}
	logger.V(2).Info("Synced proxy rules", "full", full, "changed", len(changed), "rules", res.Rules, "bytes", res.Bytes, "took", took)
	if p.cfg.Metrics != nil {
		p.cfg.Metrics.ObserveSync(metrics.Sync{Family: familyLabel(f), Full: full, Took: took, Ended: p.cfg.Clock.Now(), Rules: res.Rules, Bytes: res.Bytes})
	}
	p.clearConntrack(ctx, prev, st)
	return nil
}

// clearConntrack removes the UDP flows a successful sync left stale.
// Failures are logged: the rules are right, only old flows linger.
func (p *Proxier) clearConntrack(ctx context.Context, prev, next *State) {
	if p.cfg.Conntrack == nil {
		return
	}
	logger := klog.FromContext(ctx)
	stale := findStaleUDP(prev, next)
	for _, ip := range stale.serviceIPs {
		if err := p.cfg.Conntrack.ClearUDPForServiceIP(ip); err != nil {
			logger.Error(err, "Clearing UDP conntrack entries failed", "serviceIP", ip)
		}
	}
	for _, e := range stale.endpoints {
		if err := p.cfg.Conntrack.ClearUDPForEndpoint(e.serviceIP, e.port, e.endpointIP); err != nil {
			logger.Error(err, "Clearing UDP conntrack entries failed", "serviceIP", e.serviceIP, "port", e.port, "endpointIP", e.endpointIP)
		}
	}
}

// syncHealthChecks opens the health-check node ports of the computed
// services and tells each its ready local endpoints.
func (p *Proxier) syncHealthChecks(ctx context.Context, states map[Family]*State) {
	if p.cfg.ServiceHealth == nil {
		return
	}
	ports, counts := healthChecks(states)
	if err := p.cfg.ServiceHealth.SyncServices(ctx, ports); err != nil {
		klog.FromContext(ctx).Error(err, "Opening health-check node ports failed")
	}
	if err := p.cfg.ServiceHealth.SyncEndpoints(counts); err != nil {
		klog.FromContext(ctx).Error(err, "Updating health-check endpoint counts failed")
	}
}

// healthChecks returns the health-check node port of every
// externalTrafficPolicy: Local service and its number of ready local
// endpoints (the most any of its ports has, in any family).
func healthChecks(states map[Family]*State) (map[types.NamespacedName]uint16, map[types.NamespacedName]int) {
	ports := map[types.NamespacedName]uint16{}
	counts := map[types.NamespacedName]int{}
	for _, st := range states {
		for i := range st.Services {
			sp := &st.Services[i]
			if !sp.ExternalLocal || sp.HealthCheckNodePort == 0 {
				continue
			}
			name := types.NamespacedName{Namespace: sp.Name.Namespace, Name: sp.Name.Name}
			ports[name] = sp.HealthCheckNodePort
			n := 0
			for _, e := range sp.ExternalEndpoints {
				if e.Local && e.Ready {
					n++
				}
			}
			counts[name] = max(counts[name], n)
		}
	}
	return ports, counts
}

// observeProgramming records, after a successful sync, how long each
// applied EndpointSlice change took from its trigger to the rules.
func (p *Proxier) observeProgramming() {
	if p.cfg.Metrics != nil {
		now := p.cfg.Clock.Now()
		for _, t := range p.state.triggers {
			if t.IsZero() {
				continue
			}
			for _, f := range p.cfg.Options.Families {
				p.cfg.Metrics.NetworkProgramming.WithLabelValues(familyLabel(f)).Observe(now.Sub(t).Seconds())
			}
		}
	}
	clear(p.state.triggers)
}

// report emits one Warning Event per new Problem of a service; problems
// that went away are forgotten, so that they are reported again if they
// come back.
func (p *Proxier) report(ctx context.Context, snap *Snapshot, problems []Problem) {
	logger := klog.FromContext(ctx)
	current := map[types.NamespacedName]map[Problem]bool{}
	for _, pr := range problems {
		if current[pr.Service] == nil {
			current[pr.Service] = map[Problem]bool{}
		}
		current[pr.Service][pr] = true
		if p.state.reported[pr.Service][pr] {
			continue
		}
		logger.Info("Skipping bad service input", "service", pr.Service, "reason", pr.Reason, "message", pr.Message)
		if svc := snap.Services[pr.Service]; svc != nil && p.cfg.Recorder != nil {
			p.cfg.Recorder.Event(svc, v1.EventTypeWarning, pr.Reason, pr.Message)
		}
	}
	p.state.reported = current
}

// familyLabel is the ip_family label value of f.
func familyLabel(f Family) string {
	if f == IPv6 {
		return string(v1.IPv6Protocol)
	}
	return string(v1.IPv4Protocol)
}
