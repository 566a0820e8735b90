package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/systemd"
)

// readyMaxWait bounds how long berth waits for its node to be registered
// and its first service sync before it tells systemd it is ready anyway: a
// node whose apiserver is down at boot must not hold the boot up, and
// `systemctl restart` returns at READY.
const readyMaxWait = 2 * time.Minute

// service is berth's side of its systemd unit: READY, STATUS and STOPPING
// notifications and the watchdog. Outside systemd it does nothing.
type service struct {
	notifier *systemd.Notifier
	mu       sync.Mutex
	// checks are the health checks that keep the watchdog fed; none while
	// berth starts (waiting for kubeadm's files is healthy).
	checks []systemd.Check
}

// startService connects to systemd's notify socket, if any, and starts
// feeding the watchdog until ctx ends: systemd arms it when the unit
// starts, not when it reports ready.
func startService(ctx context.Context, clk clock.WithTicker) *service {
	log := klog.FromContext(ctx)
	n, err := systemd.NotifierFromEnvironment()
	if err != nil {
		log.Error(err, "Cannot talk to systemd; running without notifications")
		n, _ = systemd.NewNotifier("")
	}
	s := &service{notifier: n}
	timeout, err := systemd.WatchdogTimeout()
	if err != nil {
		log.Error(err, "Reading the systemd watchdog settings")
	}
	wd, err := systemd.NewWatchdog(systemd.WatchdogConfig{
		Notifier: n,
		Timeout:  timeout,
		Checks:   []systemd.Check{{Name: "node agent", Healthy: s.healthy}},
		Clock:    clk,
	})
	if err != nil {
		log.Error(err, "Cannot run the systemd watchdog")
		return s
	}
	go func() { _ = wd.Run(ctx) }()
	context.AfterFunc(ctx, func() { _ = n.Stopping("shutting down") })
	return s
}

// watch makes the watchdog depend on checks from now on.
func (s *service) watch(checks ...systemd.Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, checks...)
}

func (s *service) healthy() error {
	s.mu.Lock()
	checks := s.checks
	s.mu.Unlock()
	var errs []error
	for _, c := range checks {
		if err := c.Healthy(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// status sets the unit's STATUS= line (systemctl status shows it).
func (s *service) status(ctx context.Context, text string) {
	if err := s.notifier.Status(text); err != nil {
		klog.FromContext(ctx).V(2).Info("Cannot send STATUS to systemd", "err", err)
	}
}

// reportReady sends READY=1 once every condition is met, or after
// readyMaxWait.
func (s *service) reportReady(ctx context.Context, clk clock.WithTicker, conds ...systemd.Condition) error {
	if !s.notifier.Enabled() {
		return nil
	}
	return systemd.ReportReadiness(ctx, systemd.ReadinessConfig{
		Notifier:   s.notifier,
		Conditions: conds,
		MaxWait:    readyMaxWait,
		Interval:   time.Second,
		Clock:      clk,
	})
}
