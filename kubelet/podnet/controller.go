package podnet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// Retry backoff after a failed sync: doubling from minRetryDelay up to
// maxRetryDelay.
const (
	minRetryDelay = time.Second
	maxRetryDelay = 2 * time.Minute
)

// syncKey is the work queue's only item: every sync handles all Nodes.
const syncKey = "sync"

// ErrNotReady is wrapped by Ready's error until the CNI config is written.
var ErrNotReady = errors.New("pod network not ready")

// Controller keeps this node's CNI config and the routes to other Nodes'
// pod CIDRs in line with the Node objects.
type Controller struct {
	// cfg is the validated Config with its defaults applied.
	cfg Config
	// running is set by the first Run.
	running atomic.Bool

	// mu guards the fields below.
	mu sync.Mutex
	// ready is what Ready returns.
	ready error
	// skipped is the last sync's reason per Node that got no route, so that
	// a reason is logged when it changes rather than on every sync.
	skipped map[string]string
}

// New returns a Controller for cfg, registering cfg.Nodes with its informer
// factory (so call New before the factory's Start).
func New(cfg Config) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{
		cfg:   cfg.withDefaults(),
		ready: fmt.Errorf("%w: node %s not synced yet", ErrNotReady, cfg.NodeName),
	}
	// Asking for the informer registers it with the factory, which starts
	// only the informers asked for before its Start.
	c.cfg.Nodes.Informer()
	return c, nil
}

// Ready returns nil once this Node's podCIDR is known and the CNI config for
// it is written, and an error wrapping ErrNotReady that says why not
// otherwise. It stays nil while this Node's object is briefly missing.
func (c *Controller) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready
}

// Run syncs on every relevant Node change, retries failed syncs with
// backoff and repeats good ones every ResyncPeriod, until ctx ends; then it
// returns nil. It waits for the Nodes informer to sync (the caller starts
// the informer factory) and may be called once.
func (c *Controller) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("pod network controller: Run called twice")
	}
	logger := klog.FromContext(ctx).WithName("podnet")
	ctx = klog.NewContext(ctx, logger)

	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](minRetryDelay, maxRetryDelay),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "podnet", Clock: c.cfg.Clock},
	)
	defer queue.ShutDown()
	stop := context.AfterFunc(ctx, queue.ShutDown)
	defer stop()

	informer := c.cfg.Nodes.Informer()
	reg, err := informer.AddEventHandlerWithOptions(eventHandler(queue), cache.HandlerOptions{Logger: &logger})
	if err != nil {
		return fmt.Errorf("watching nodes: %w", err)
	}
	defer func() {
		if err := informer.RemoveEventHandler(reg); err != nil {
			logger.V(4).Info("Removing the node event handler failed", "err", err)
		}
	}()
	if !cache.WaitFor(ctx, "node informer", reg.HasSyncedChecker()) {
		return nil
	}
	logger.Info("Pod network controller started", "node", c.cfg.NodeName,
		"conf", filepath.Join(c.cfg.ConfDir, c.cfg.ConfName), "bridge", c.cfg.BridgeName)
	queue.Add(syncKey)
	for c.processNext(ctx, queue) {
	}
	return nil
}

// eventHandler enqueues a sync for every Node event that can change the
// config or the routes; it does no work itself.
func eventHandler(queue workqueue.TypedInterface[string]) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { queue.Add(syncKey) },
		UpdateFunc: func(oldObj, newObj any) {
			if routingChanged(oldObj, newObj) {
				queue.Add(syncKey)
			}
		},
		DeleteFunc: func(any) { queue.Add(syncKey) },
	}
}

// routingChanged reports whether a Node update touches what podnet uses:
// its pod CIDRs or its InternalIPs. Status heartbeats do not.
func routingChanged(oldObj, newObj any) bool {
	o, ok1 := oldObj.(*v1.Node)
	n, ok2 := newObj.(*v1.Node)
	if !ok1 || !ok2 {
		return true
	}
	internalIPs := func(n *v1.Node) []string {
		var ips []string
		for _, a := range n.Status.Addresses {
			if a.Type == v1.NodeInternalIP {
				ips = append(ips, a.Address)
			}
		}
		return ips
	}
	return o.Spec.PodCIDR != n.Spec.PodCIDR ||
		!slices.Equal(o.Spec.PodCIDRs, n.Spec.PodCIDRs) ||
		!slices.Equal(internalIPs(o), internalIPs(n))
}

// processNext runs one sync from the queue; it returns false once the queue
// is shut down.
func (c *Controller) processNext(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string]) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	if err := c.sync(ctx); err != nil {
		klog.FromContext(ctx).Error(err, "Pod network sync failed, will retry", "node", c.cfg.NodeName, "failures", queue.NumRequeues(key)+1)
		queue.AddRateLimited(key)
		return true
	}
	queue.Forget(key)
	queue.AddAfter(key, c.cfg.ResyncPeriod)
	return true
}

// sync brings the CNI config and the routes in line with the Nodes in the
// informer's cache. It does both even when one fails.
func (c *Controller) sync(ctx context.Context) error {
	nodes, err := c.cfg.Nodes.Lister().List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	return errors.Join(c.syncConf(ctx), c.syncRoutes(ctx, nodes))
}

// syncConf writes the CNI config for this Node's pod CIDRs and updates
// readiness.
func (c *Controller) syncConf(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	name := c.cfg.NodeName
	self, err := c.cfg.Nodes.Lister().Get(name)
	if apierrors.IsNotFound(err) {
		// Keep the config (and readiness) as they are: the Node may be
		// re-registering, and pods already running keep their network.
		logger.V(2).Info("Node not found, keeping the CNI config", "node", name)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.ready != nil {
			c.ready = fmt.Errorf("%w: node %s not found", ErrNotReady, name)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting node %s: %w", name, err)
	}
	cidrs, err := podCIDRs(self)
	if err != nil {
		// Retrying does not fix a bad podCIDR; a Node update triggers a sync.
		logger.Error(err, "Cannot configure the pod network", "node", name)
		c.setReady(fmt.Errorf("%w: %w", ErrNotReady, err))
		return nil
	}
	if len(cidrs) == 0 {
		logger.V(2).Info("Node has no podCIDR yet", "node", name)
		c.setReady(fmt.Errorf("%w: node %s has no podCIDR yet", ErrNotReady, name))
		return nil
	}
	data, err := renderConflist(confParams{bridge: c.cfg.BridgeName, mtu: c.cfg.MTU, hairpin: c.cfg.HairpinMode, podCIDRs: cidrs})
	if err == nil {
		var wrote bool
		wrote, err = writeIfChanged(c.cfg.ConfDir, c.cfg.ConfName, data)
		if wrote {
			logger.Info("Wrote the CNI config", "node", name, "path", filepath.Join(c.cfg.ConfDir, c.cfg.ConfName), "podCIDRs", cidrs)
		}
	}
	if err != nil {
		err = fmt.Errorf("CNI config for node %s: %w", name, err)
		c.setReady(fmt.Errorf("%w: %w", ErrNotReady, err))
		return err
	}
	c.setReady(nil)
	return nil
}

func (c *Controller) setReady(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = err
}

// syncRoutes adds the missing routes to other Nodes' pod CIDRs and deletes
// the stale ones, carrying on past failures.
func (c *Controller) syncRoutes(ctx context.Context, nodes []*v1.Node) error {
	logger := klog.FromContext(ctx)
	desired, skipped := desiredRoutes(c.cfg.NodeName, nodes)
	c.logSkipped(logger, skipped)
	current, err := c.cfg.Routes.List()
	if err != nil {
		return fmt.Errorf("listing routes: %w", err)
	}
	add, del := planRoutes(desired, current)
	var errs []error
	for _, r := range add {
		if err := c.cfg.Routes.Add(r.Route); err != nil {
			errs = append(errs, fmt.Errorf("route to node %s: %w", r.Node, err))
			continue
		}
		logger.V(2).Info("Added route", "node", r.Node, "dst", r.Route.Dst, "gateway", r.Route.Gateway)
	}
	for _, r := range del {
		if err := c.cfg.Routes.Delete(r); err != nil {
			errs = append(errs, fmt.Errorf("deleting stale route %s: %w", r, err))
			continue
		}
		logger.V(2).Info("Deleted stale route", "dst", r.Dst, "gateway", r.Gateway)
	}
	return errors.Join(errs...)
}

// logSkipped logs, at V(2), each Node that gets no route, when its reason
// is new.
func (c *Controller) logSkipped(logger klog.Logger, skipped []skippedNode) {
	reasons := map[string]string{}
	for _, s := range skipped {
		if reasons[s.Node] != "" {
			reasons[s.Node] += "; "
		}
		reasons[s.Node] += s.Reason
	}
	c.mu.Lock()
	last := c.skipped
	c.skipped = reasons
	c.mu.Unlock()
	for _, node := range slices.Sorted(maps.Keys(reasons)) {
		if last[node] != reasons[node] {
			logger.V(2).Info("No route to node's pods", "node", node, "reason", reasons[node])
		}
	}
}
