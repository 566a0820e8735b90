package systemd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Check is one health condition the watchdog requires before it pings.
type Check struct {
	// Name names the check in logs.
	Name string
	// Healthy returns nil when healthy, else why not. A call that blocks
	// blocks the watchdog too, which is what a wedged loop should cause.
	Healthy func() error
}

// WatchdogTimeout returns the service's watchdog timeout (WatchdogSec=)
// from $WATCHDOG_USEC, or 0 when systemd runs no watchdog for berth: the
// variable is unset, or $WATCHDOG_PID names another process (the variables
// were inherited from a parent).
func WatchdogTimeout() (time.Duration, error) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, fmt.Errorf("systemd watchdog: %w", err)
	}
	return d, nil
}

// WatchdogConfig configures a Watchdog.
type WatchdogConfig struct {
	// Notifier sends the keep-alives.
	Notifier *Notifier
	// Timeout is the service's watchdog timeout, from [WatchdogTimeout]. 0
	// disables the watchdog: Run then only waits for its context to end.
	Timeout time.Duration
	// Checks must all pass for a keep-alive to be sent.
	Checks []Check
	// Clock paces the keep-alives.
	Clock clock.WithTicker
}

// Validate reports every problem in the configuration.
func (c *WatchdogConfig) Validate() error {
	var errs []error
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v: must not be negative", c.Timeout))
	}
	if c.Timeout > 0 && c.Notifier == nil {
		errs = append(errs, errors.New("notifier: required when the watchdog is enabled"))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("clock: required"))
	}
	for i, check := range c.Checks {
		if check.Name == "" || check.Healthy == nil {
			errs = append(errs, fmt.Errorf("checks[%d]: name and healthy are required", i))
		}
	}
	return errors.Join(errs...)
}

// Watchdog feeds systemd's service watchdog (WatchdogSec=) while berth is
// healthy. It pings every half timeout, as sd_watchdog_enabled(3)
// recommends, but only when every check passes: when a loop wedges, its
// check fails (or blocks), the pings stop, and after the timeout systemd
// kills berth with SIGABRT (Go then dumps every goroutine's stack to the
// journal) and Restart= starts it again. A check that recovers before the
// timeout resumes the pings.
type Watchdog struct {
	cfg WatchdogConfig
}

// NewWatchdog returns a Watchdog for cfg.
func NewWatchdog(cfg WatchdogConfig) (*Watchdog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid watchdog configuration: %w", err)
	}
	return &Watchdog{cfg: cfg}, nil
}

// Run pings until ctx ends, then returns nil. systemd arms the watchdog
// when the service starts, not when it reports ready, so Run must start
// with berth, and its checks must pass while berth is still starting.
func (w *Watchdog) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("watchdog")
	if w.cfg.Timeout == 0 {
		<-ctx.Done()
		return nil
	}
	interval := w.cfg.Timeout / 2
	log.Info("Feeding the systemd watchdog while berth is healthy", "timeout", w.cfg.Timeout, "interval", interval)
	ticker := w.cfg.Clock.NewTicker(interval)
	defer ticker.Stop()
	var failing string
	for {
		failing = w.ping(log, failing)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
		}
	}
}

// ping sends a keep-alive if every check passes, and logs when the set of
// failing checks changes. failing is that set from the last round, as text;
// the set from this round is returned.
func (w *Watchdog) ping(log klog.Logger, failing string) string {
	var problems []string
	var errs []error
	for _, c := range w.cfg.Checks {
		if err := c.Healthy(); err != nil {
			problems = append(problems, c.Name)
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	now := strings.Join(problems, ", ")
	switch {
	case now != "" && now != failing:
		log.Error(errors.Join(errs...), "Not feeding the systemd watchdog: berth is unhealthy; systemd restarts berth unless it recovers in time",
			"failing", problems, "timeout", w.cfg.Timeout)
	case now == "" && failing != "":
		log.Info("berth is healthy again; feeding the systemd watchdog", "recovered", failing)
	}
	if now == "" {
		if err := w.cfg.Notifier.Watchdog(); err != nil {
			log.Error(err, "Sending a keep-alive to the systemd watchdog failed")
		}
	}
	return now
}
