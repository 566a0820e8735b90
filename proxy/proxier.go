package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

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
