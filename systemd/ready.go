package systemd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Condition is one thing berth waits for before it reports ready.
type Condition struct {
	// Name says what is awaited, in STATUS= text: "node registration".
	Name string
	// Met reports whether it happened. Called from one goroutine, never
	// concurrently with itself.
	Met func() bool
}

// ReadinessConfig configures ReportReadiness.
type ReadinessConfig struct {
	// Notifier sends READY=1 and STATUS=.
	Notifier *Notifier
	// Conditions must all be met for berth to be ready.
	Conditions []Condition
	// MaxWait is how long READY=1 waits for the conditions. Past it, berth
	// reports ready anyway, with what it still waits for in STATUS=:
	// conditions that depend on the network, the API server or `kubeadm
	// join` can take forever, and a start that never completes makes
	// systemd kill berth at TimeoutStartSec and start it again, in a loop
	// that helps nothing. Must be below the units' TimeoutStartSec (5min).
	MaxWait time.Duration
	// Interval is how often the conditions are polled.
	Interval time.Duration
	// Clock paces the polls and measures MaxWait.
	Clock clock.WithTicker
}

// Validate reports every problem in the configuration.
func (c *ReadinessConfig) Validate() error {
	var errs []error
	if c.Notifier == nil {
		errs = append(errs, errors.New("notifier: required"))
	}
	if c.MaxWait <= 0 {
		errs = append(errs, fmt.Errorf("maxWait %v: must be positive", c.MaxWait))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %v: must be positive", c.Interval))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("clock: required"))
	}
	for i, cond := range c.Conditions {
		if cond.Name == "" || cond.Met == nil {
			errs = append(errs, fmt.Errorf("conditions[%d]: name and met are required", i))
		}
	}
	return errors.Join(errs...)
}

// ReportReadiness tells systemd how berth's start-up goes: STATUS= names the
// conditions still awaited whenever that list changes, and READY=1 is sent
// once all are met, or after MaxWait with the rest in STATUS=. It returns
// nil when every condition is met (after a final STATUS=Running) or when
// ctx ends; only an invalid configuration is an error.
func ReportReadiness(ctx context.Context, cfg ReadinessConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid readiness configuration: %w", err)
	}
	log := klog.FromContext(ctx).WithName("readiness")
	deadline := cfg.Clock.After(cfg.MaxWait)
	ticker := cfg.Clock.NewTicker(cfg.Interval)
	defer ticker.Stop()
	// ready is whether READY=1 was sent; waited whether MaxWait passed.
	ready, waited, last := false, false, ""
	for {
		pending := pendingConditions(cfg.Conditions)
		status := startupStatus(ready || waited, pending)
		var err error
		switch {
		case !ready && (len(pending) == 0 || waited):
			if len(pending) > 0 {
				log.Info("Reporting ready to systemd before start-up completed", "maxWait", cfg.MaxWait, "waitingFor", pending)
			}
			err = cfg.Notifier.Ready(status)
			ready = true
		case status != last:
			err = cfg.Notifier.Status(status)
		}
		if err != nil {
			log.Error(err, "Reporting start-up to systemd failed")
		}
		last = status
		if len(pending) == 0 {
			log.Info("Start-up complete", "status", status)
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		case <-deadline:
			deadline, waited = nil, true
		}
	}
}

// pendingConditions returns the names of the conditions not met yet.
func pendingConditions(conds []Condition) []string {
	var pending []string
	for _, c := range conds {
		if !c.Met() {
			pending = append(pending, c.Name)
		}
	}
	return pending
}

// startupStatus is the STATUS= text for a start-up still waiting for
// pending; ready says whether READY=1 was sent already.
func startupStatus(ready bool, pending []string) string {
	switch {
	case len(pending) == 0:
		return "Running"
	case ready:
		return "Running; waiting for " + strings.Join(pending, ", ")
	default:
		return "Starting; waiting for " + strings.Join(pending, ", ")
	}
}
