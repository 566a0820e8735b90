package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	kubeletconfig "github.com/berthnode/berth/kubelet/config"
	"github.com/berthnode/berth/kubelet/node"
	"github.com/berthnode/berth/kubelet/pods"
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

// nodeShutdown is what berth does when logind announces a shutdown: the
// node turns NotReady ("node is shutting down") and its pods stop, regular
// ones first, then the critical ones.
type nodeShutdown struct {
	pods  *pods.Manager
	nodes *node.Controller
}

var _ systemd.ShutdownHandler = nodeShutdown{}

func (n nodeShutdown) SetShuttingDown(_ context.Context, down bool) error {
	n.pods.SetShuttingDown(down)
	n.nodes.Kick()
	return nil
}

func (n nodeShutdown) StopPods(ctx context.Context, class systemd.PodClass, grace time.Duration) error {
	return n.pods.StopPods(ctx, class == systemd.CriticalPods, grace)
}

// shutdownCheck is the node readiness check that fails while the node
// shuts down, as kubelet's does.
func shutdownCheck(pm *pods.Manager) node.Check {
	return node.Check{Name: "node shutdown", Ready: func() error {
		if pm.ShuttingDown() {
			return errors.New("node is shutting down")
		}
		return nil
	}}
}

// runShutdownManager holds node shutdowns up for the pods, as kubelet's
// graceful node shutdown, when shutdownGracePeriod is set.
func runShutdownManager(ctx context.Context, kc *kubeletconfig.KubeletConfiguration, h nodeShutdown, clk clock.WithTicker) error {
	grace := kc.ShutdownGracePeriod.Duration
	if grace <= 0 {
		return nil
	}
	m, err := systemd.NewShutdownManager(systemd.ShutdownConfig{
		Dial:                    systemd.DialLogind,
		Handler:                 h,
		GracePeriod:             grace,
		CriticalPodsGracePeriod: kc.ShutdownGracePeriodCriticalPods.Duration,
		LogindConfDir:           systemd.LogindConfDir,
		Clock:                   clk,
	})
	if err != nil {
		return fmt.Errorf("graceful node shutdown: %w", err)
	}
	return m.Run(ctx)
}
