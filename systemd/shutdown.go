package systemd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// PodClass is a group of pods stopped together during a node shutdown.
type PodClass string

const (
	// RegularPods are all pods but the critical ones. They stop first.
	RegularPods PodClass = "regular"
	// CriticalPods are those with a priority at or above
	// system-cluster-critical (2000000000), as kubelet counts them: they
	// stop last, in the final CriticalPodsGracePeriod.
	CriticalPods PodClass = "critical"
)

// ShutdownHandler is what berth does when the node shuts down.
type ShutdownHandler interface {
	// SetShuttingDown marks the node as shutting down (true: the Node's
	// Ready condition goes false with a reason, new pods are rejected) or
	// as no longer shutting down (false: the shutdown was cancelled). It is
	// called before StopPods and must return quickly.
	SetShuttingDown(ctx context.Context, shuttingDown bool) error
	// StopPods stops the node's pods of one class, giving each the smaller
	// of its terminationGracePeriodSeconds and gracePeriod (0: kill now),
	// and returns when they are stopped. Past gracePeriod the manager
	// stops waiting and goes on; ctx ends when the node's shutdown
	// handling ends.
	StopPods(ctx context.Context, class PodClass, gracePeriod time.Duration) error
}

// ShutdownConfig configures a ShutdownManager: kubelet's
// shutdownGracePeriod and shutdownGracePeriodCriticalPods, and where logind
// is.
type ShutdownConfig struct {
	// Dial connects to logind; [DialLogind] in production. The manager
	// dials again after losing the connection (logind or D-Bus restarted).
	Dial func(ctx context.Context) (Logind, error)
	// Handler marks the node and stops its pods.
	Handler ShutdownHandler
	// GracePeriod is how long the node's shutdown is held up for its pods
	// (kubelet's shutdownGracePeriod). Must be positive: kubelet's 0
	// means graceful node shutdown is off, and then the caller runs no
	// ShutdownManager.
	GracePeriod time.Duration
	// CriticalPodsGracePeriod is the final part of GracePeriod reserved for
	// critical pods (kubelet's shutdownGracePeriodCriticalPods).
	CriticalPodsGracePeriod time.Duration
	// LogindConfDir is where to write the logind drop-in raising
	// InhibitDelayMaxSec to GracePeriod when logind's is lower, as kubelet
	// does; [LogindConfDir] in production. Empty leaves logind's
	// configuration alone, and the grace period is then cut to logind's.
	LogindConfDir string
	// Clock times the grace periods and the retries.
	Clock clock.WithTicker
}

// Validate reports every problem in the configuration.
func (c *ShutdownConfig) Validate() error {
	var errs []error
	if c.Dial == nil {
		errs = append(errs, errors.New("dial: required"))
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("handler: required"))
	}
	if c.GracePeriod <= 0 {
		errs = append(errs, fmt.Errorf("gracePeriod %v: must be positive", c.GracePeriod))
	}
	if c.CriticalPodsGracePeriod < 0 || c.CriticalPodsGracePeriod > c.GracePeriod {
		errs = append(errs, fmt.Errorf("criticalPodsGracePeriod %v: must be between 0 and gracePeriod (%v)", c.CriticalPodsGracePeriod, c.GracePeriod))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("clock: required"))
	}
	return errors.Join(errs...)
}

// ShutdownPlan is how a node shutdown's time is spent.
type ShutdownPlan struct {
	// RegularPods is the time regular pods get, first.
	RegularPods time.Duration
	// CriticalPods is the time critical pods get, after.
	CriticalPods time.Duration
}

// Total is the whole time the shutdown is held up.
func (p ShutdownPlan) Total() time.Duration { return p.RegularPods + p.CriticalPods }

// PlanShutdown splits the grace period between regular and critical pods
// when logind holds a shutdown for at most inhibitDelayMax: critical pods
// keep their share, and regular pods lose what logind does not grant.
func PlanShutdown(gracePeriod, criticalPods, inhibitDelayMax time.Duration) ShutdownPlan {
	total := min(gracePeriod, inhibitDelayMax)
	critical := min(criticalPods, total)
	return ShutdownPlan{RegularPods: total - critical, CriticalPods: critical}
}

// inhibitRequest is the lock berth takes, as `systemd-inhibit --list`
// shows it.
func inhibitRequest() InhibitRequest {
	return InhibitRequest{
		What: "shutdown",
		Who:  "berth",
		Why:  "berth stops the node's pods gracefully before the node shuts down",
		Mode: "delay",
	}
}

// ShutdownManager implements graceful node shutdown with a logind
// inhibitor lock, as kubelet does: it holds a "delay" lock on shutdown;
// when logind announces a shutdown (PrepareForShutdown true) it marks the
// node, stops regular pods, then critical pods in the last
// CriticalPodsGracePeriod, and releases the lock so the shutdown goes on.
// A cancelled shutdown (PrepareForShutdown false) unmarks the node and
// takes the lock again.
type ShutdownManager struct {
	cfg          ShutdownConfig
	shuttingDown atomic.Bool
}

// NewShutdownManager returns a ShutdownManager for cfg.
func NewShutdownManager(cfg ShutdownConfig) (*ShutdownManager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid graceful node shutdown configuration: %w", err)
	}
	return &ShutdownManager{cfg: cfg}, nil
}

// ShuttingDown reports whether the node is shutting down: pod admission
// rejects new pods then.
func (m *ShutdownManager) ShuttingDown() bool { return m.shuttingDown.Load() }

// Retry pacing after losing logind (or not finding it).
const (
	minRetry = time.Second
	maxRetry = time.Minute
)

// Run holds the inhibitor lock and handles shutdowns until ctx ends, then
// releases the lock and returns nil. Without logind (no systemd, no D-Bus)
// node shutdown is not graceful: Run logs that and keeps trying to connect,
// backing off to once a minute, without failing berth.
func (m *ShutdownManager) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("shutdown")
	ctx = klog.NewContext(ctx, log)
	retry, failures := minRetry, 0
	for {
		locked, err := m.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if locked {
			retry, failures = minRetry, 0
		}
		failures++
		if failures == 1 {
			log.Error(err, "Graceful node shutdown is unavailable until berth reaches logind", "retryIn", retry)
		} else {
			log.V(2).Info("Still cannot reach logind", "err", err, "retryIn", retry)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.cfg.Clock.After(retry):
		}
		retry = min(2*retry, maxRetry)
	}
}

// session runs one connection to logind until it fails or ctx ends, and
// reports whether it got as far as taking the lock.
func (m *ShutdownManager) session(ctx context.Context) (locked bool, err error) {
	log := klog.FromContext(ctx)
	conn, err := m.cfg.Dial(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	plan, err := m.plan(ctx, conn)
	if err != nil {
		return false, err
	}
	// Subscribe before locking: a shutdown that starts in between is then
	// seen, if not held up.
	events, err := conn.PrepareForShutdown(ctx)
	if err != nil {
		return false, err
	}
	lock, err := conn.Inhibit(ctx, inhibitRequest())
	if err != nil {
		return false, err
	}
	defer func() { closeLock(lock) }()
	log.Info("Holding a logind inhibitor lock for graceful node shutdown",
		"regularPods", plan.RegularPods, "criticalPods", plan.CriticalPods)
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case active, ok := <-events:
			if !ok {
				return true, errors.New("lost the connection to logind")
			}
			if active {
				m.shutdown(ctx, plan)
				closeLock(lock)
				lock = nil
				log.Info("Released the inhibitor lock; the node shuts down")
				continue
			}
			m.cancelled(ctx)
			if lock == nil {
				if lock, err = conn.Inhibit(ctx, inhibitRequest()); err != nil {
					return true, err
				}
			}
		}
	}
}

// closeLock releases an inhibitor lock, if held.
func closeLock(lock io.Closer) {
	if lock != nil {
		_ = lock.Close()
	}
}

// plan makes sure logind holds a shutdown for the whole grace period,
// raising its InhibitDelayMaxSec if needed and allowed, and returns how the
// time logind grants is split.
func (m *ShutdownManager) plan(ctx context.Context, conn Logind) (ShutdownPlan, error) {
	log := klog.FromContext(ctx)
	delay, err := conn.InhibitDelayMax(ctx)
	if err != nil {
		return ShutdownPlan{}, err
	}
	if delay < m.cfg.GracePeriod && m.cfg.LogindConfDir != "" {
		log.Info("Raising logind's InhibitDelayMaxSec to the shutdown grace period", "from", delay, "to", m.cfg.GracePeriod,
			"dropIn", m.cfg.LogindConfDir+"/"+LogindDropInName)
		raised, err := m.raiseInhibitDelay(ctx, conn)
		switch {
		case ctx.Err() != nil:
			return ShutdownPlan{}, ctx.Err()
		case err != nil:
			// A read-only /etc must not cost the node its graceful
			// shutdown: go on with what logind grants.
			log.Error(err, "Raising logind's InhibitDelayMaxSec failed")
		default:
			delay = raised
		}
	}
	plan := PlanShutdown(m.cfg.GracePeriod, m.cfg.CriticalPodsGracePeriod, delay)
	if delay < m.cfg.GracePeriod {
		log.Error(nil, "logind holds a shutdown for less than the shutdown grace period: regular pods get less time",
			"inhibitDelayMax", delay, "shutdownGracePeriod", m.cfg.GracePeriod, "regularPods", plan.RegularPods, "criticalPods", plan.CriticalPods)
	}
	return plan, nil
}

// Polling of logind's setting after a reload, which logind applies
// asynchronously.
const (
	reloadPolls    = 10
	reloadInterval = 500 * time.Millisecond
)

// raiseInhibitDelay writes the logind drop-in, reloads logind and returns
// its InhibitDelayMax once it reaches the grace period, or the last value
// read.
func (m *ShutdownManager) raiseInhibitDelay(ctx context.Context, conn Logind) (time.Duration, error) {
	if err := WriteLogindDropIn(m.cfg.LogindConfDir, m.cfg.GracePeriod); err != nil {
		return 0, err
	}
	if err := conn.ReloadConfig(ctx); err != nil {
		return 0, err
	}
	var delay time.Duration
	for range reloadPolls {
		var err error
		if delay, err = conn.InhibitDelayMax(ctx); err != nil {
			return 0, err
		}
		if delay >= m.cfg.GracePeriod {
			break
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-m.cfg.Clock.After(reloadInterval):
		}
	}
	return delay, nil
}

// shutdown handles a node shutdown: it marks the node and stops regular
// pods, then critical pods, each class within its share of plan. Regular
// pods that overrun their share are still waited for while critical pods
// stop, up to the end of the whole plan.
func (m *ShutdownManager) shutdown(ctx context.Context, plan ShutdownPlan) {
	log := klog.FromContext(ctx)
	m.shuttingDown.Store(true)
	start := m.cfg.Clock.Now()
	log.Info("Node is shutting down: stopping pods", "regularPods", plan.RegularPods, "criticalPods", plan.CriticalPods)
	// Pods that are still stopping when the time is up keep stopping until
	// the lock is released; then this context ends.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Marked before anything stops, and in order with a cancellation's
	// unmarking: the handler must return quickly (berth's sets a flag and
	// wakes the node status loop).
	if err := m.cfg.Handler.SetShuttingDown(sctx, true); err != nil {
		log.Error(err, "Marking the node as shutting down failed")
	}
	end := m.after(plan.Total())
	regular := m.stopPods(sctx, RegularPods, plan.RegularPods)
	if !await(sctx, regular, m.after(plan.RegularPods)) {
		log.Info("Regular pods did not stop within their grace period; stopping critical pods", "gracePeriod", plan.RegularPods)
	}
	critical := m.stopPods(sctx, CriticalPods, plan.CriticalPods)
	// end fires once: the second await runs only if the first saw its
	// class done, before end fired.
	if !await(sctx, critical, end) || !await(sctx, regular, end) {
		log.Info("Pods still stopping when the shutdown grace period ended; going on with the node shutdown")
	}
	log.Info("Done stopping pods for the node shutdown", "took", m.cfg.Clock.Since(start))
}

// stopPods starts stopping one class of pods and returns a channel closed
// once that is done.
func (m *ShutdownManager) stopPods(ctx context.Context, class PodClass, gracePeriod time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.cfg.Handler.StopPods(ctx, class, gracePeriod); err != nil && ctx.Err() == nil {
			klog.FromContext(ctx).Error(err, "Stopping pods for the node shutdown failed", "pods", class)
		}
	}()
	return done
}

// after returns a channel that fires once after d on the manager's clock,
// or a closed one for d <= 0.
func (m *ShutdownManager) after(d time.Duration) <-chan time.Time {
	if d > 0 {
		return m.cfg.Clock.After(d)
	}
	fired := make(chan time.Time)
	close(fired)
	return fired
}

// await reports whether done closes before timeout fires or ctx ends; a
// done already closed wins over an expired timeout.
func await(ctx context.Context, done <-chan struct{}, timeout <-chan time.Time) bool {
	select {
	case <-done:
		return true
	default:
	}
	select {
	case <-done:
		return true
	case <-timeout:
		return false
	case <-ctx.Done():
		return false
	}
}

// cancelled handles a cancelled shutdown: the node is no longer shutting
// down. Pods already stopped stay stopped; their controllers replace them.
func (m *ShutdownManager) cancelled(ctx context.Context) {
	log := klog.FromContext(ctx)
	log.Info("Node shutdown cancelled")
	m.shuttingDown.Store(false)
	if err := m.cfg.Handler.SetShuttingDown(ctx, false); err != nil {
		log.Error(err, "Marking the node as no longer shutting down failed")
	}
}
