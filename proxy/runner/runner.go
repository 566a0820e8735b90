package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Defaults of Config's intervals.
const (
	DefaultMinInterval = time.Second
	DefaultMaxInterval = time.Hour
)

// Config configures a Runner.
type Config struct {
	// Name names the runner in logs.
	Name string
	// Func is the work. An error schedules a retry after RetryInterval.
	Func func(ctx context.Context) error
	// MinInterval is the least time between the end of one run and the
	// start of the next: pokes within it are coalesced into one run at its
	// end. Default DefaultMinInterval; negative means none.
	MinInterval time.Duration
	// MaxInterval is the most time between the end of one run and the start
	// of the next, pokes or not. Default DefaultMaxInterval.
	MaxInterval time.Duration
	// RetryInterval is how soon after a failed run the next one starts
	// (never sooner than MinInterval, never later than MaxInterval). Default
	// MinInterval.
	RetryInterval time.Duration
	// Clock is the time source; default the real clock.
	Clock clock.Clock
}

// Validate checks the configuration (after defaulting).
func (c *Config) Validate() error {
	var errs []error
	if c.Func == nil {
		errs = append(errs, errors.New("func is required"))
	}
	if c.MaxInterval <= 0 {
		errs = append(errs, fmt.Errorf("maxInterval %v must be positive", c.MaxInterval))
	}
	if c.MaxInterval < c.MinInterval {
		errs = append(errs, fmt.Errorf("maxInterval %v is below minInterval %v", c.MaxInterval, c.MinInterval))
	}
	if c.RetryInterval < 0 {
		errs = append(errs, fmt.Errorf("retryInterval %v is negative", c.RetryInterval))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	switch {
	case c.MinInterval == 0:
		c.MinInterval = DefaultMinInterval
	case c.MinInterval < 0:
		c.MinInterval = 0
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = DefaultMaxInterval
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = c.MinInterval
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
}

// Runner runs a function when poked, bounded in frequency: at most once per
// MinInterval, at least once per MaxInterval, and RetryInterval after a
// failure. Runs never overlap.
type Runner struct {
	cfg Config
	// wake is poked (never blocking) when a run is asked for or a retry is
	// scheduled, so that Run recomputes when to run next.
	wake chan struct{}

	mu sync.Mutex
	// pending is set by Trigger and cleared when a run starts.
	pending bool
	// retryAt is when RetryAfter asked for the next run (zero: not asked).
	retryAt time.Time
}

// New returns a Runner; it does nothing until Run.
func New(cfg Config) (*Runner, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("runner %s: %w", cfg.Name, err)
	}
	return &Runner{cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Trigger asks for a run as soon as MinInterval allows. Pokes before that
// run starts are coalesced into it. It never blocks.
func (r *Runner) Trigger() {
	r.mu.Lock()
	r.pending = true
	r.mu.Unlock()
	r.poke()
}

// RetryAfter asks for a run no later than d from now (still no sooner than
// MinInterval after the last run). Func may call it.
func (r *Runner) RetryAfter(d time.Duration) {
	at := r.cfg.Clock.Now().Add(d)
	r.mu.Lock()
	if r.retryAt.IsZero() || at.Before(r.retryAt) {
		r.retryAt = at
	}
	r.mu.Unlock()
	r.poke()
}

func (r *Runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run runs the loop until ctx ends, and returns nil then. The first run
// happens on the first Trigger (or after MaxInterval).
func (r *Runner) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("runner", r.cfg.Name)
	logger.V(3).Info("Runner started")
	defer logger.V(3).Info("Runner stopped")
	var lastEnd time.Time
	next := r.cfg.Clock.Now().Add(r.cfg.MaxInterval)
	for {
		due := r.due(lastEnd, next)
		if wait := due.Sub(r.cfg.Clock.Now()); wait > 0 {
			if !r.sleep(ctx, wait) {
				if ctx.Err() != nil {
					return nil
				}
				continue // woken: recompute when to run
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		r.mu.Lock()
		r.pending = false
		r.retryAt = time.Time{}
		r.mu.Unlock()

		err := r.cfg.Func(ctx)
		lastEnd = r.cfg.Clock.Now()
		interval := r.cfg.MaxInterval
		if err != nil {
			interval = min(r.cfg.RetryInterval, r.cfg.MaxInterval)
			logger.Error(err, "Run failed, retrying", "after", interval)
		}
		next = lastEnd.Add(interval)
	}
}

// due tells when the next run should start: the earliest of the scheduled
// next run, a retry and a pending poke, but not before MinInterval has
// passed since the last run.
func (r *Runner) due(lastEnd, next time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	due := next
	if !r.retryAt.IsZero() && r.retryAt.Before(due) {
		due = r.retryAt
	}
	if r.pending {
		due = lastEnd // as soon as allowed
	}
	if earliest := lastEnd.Add(r.cfg.MinInterval); due.Before(earliest) {
		due = earliest
	}
	return due
}

// sleep waits d; it returns true when d passed, false when woken early or
// when ctx ended.
func (r *Runner) sleep(ctx context.Context, d time.Duration) bool {
	t := r.cfg.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-r.wake:
		return false
	case <-ctx.Done():
		return false
	}
}
