package join

import (
	"context"
	"fmt"
	"math"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// firstRetryDelay is the pause after the first failed attempt; it doubles
// up to the retry interval.
const firstRetryDelay = 250 * time.Millisecond

// poller repeats an attempt, with pauses that grow up to a limit, until it
// succeeds, fails for good, or the time is up.
type poller struct {
	clock    clock.Clock
	timeout  time.Duration
	maxDelay time.Duration
}

// attemptFunc is one attempt: a nil error is success; otherwise retry
// tells whether trying again may help.
type attemptFunc func(ctx context.Context) (retry bool, err error)

// backoff returns the pauses between attempts: firstRetryDelay doubling
// up to maxDelay, then maxDelay. run waits them on p.clock, which tests
// replace, as client-go's reflector waits its backoff on its clock:
// wait.ExponentialBackoffWithContext would sleep on the real clock, and
// stop at the cap rather than at the timeout.
func (p poller) backoff() wait.Backoff {
	return wait.Backoff{
		Duration: min(firstRetryDelay, p.maxDelay),
		Factor:   2,
		Cap:      p.maxDelay,
		Steps:    math.MaxInt32,
	}
}

// run runs attempt until it succeeds or fails for good, ctx ends, or
// p.timeout has passed; the error then wraps the last attempt's.
func (p poller) run(ctx context.Context, what string, attempt attemptFunc) error {
	log := klog.FromContext(ctx)
	deadline := p.clock.Now().Add(p.timeout)
	backoff := p.backoff()
	for n := 1; ; n++ {
		retry, err := attempt(ctx)
		if err == nil || !retry {
			return err
		}
		left := deadline.Sub(p.clock.Now())
		if left <= 0 {
			return fmt.Errorf("%s: gave up after %s: %w", what, p.timeout, err)
		}
		delay := backoff.Step()
		log.V(1).Info("Retrying", "what", what, "attempt", n, "delay", delay, "err", err)
		timer := p.clock.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		case <-timer.C():
		}
	}
}
