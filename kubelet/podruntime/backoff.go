package podruntime

import (
	"time"

	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/utils/clock"
)

// Back-off bounds of crashing containers and failing image pulls: the
// kubelet's 10 s doubling up to 5 min.
const (
	initialBackoff = 10 * time.Second
	maxBackoff     = 300 * time.Second
)

// Backoff is a per-key exponential back-off: client-go's
// flowcontrol.Backoff on the injected clock, as the kubelet uses it. A
// key's delay starts at 10 s and doubles up to 5 min at each Next; it
// starts over when the event that asks for the next try comes more than
// 2×max after the last try, which for a crashing container means it ran
// for 10 minutes.
//
// It is a thin wrapper for two things flowcontrol does not give: how long
// a key must still wait (flowcontrol only answers yes or no; the pod
// worker schedules its next sync at the end of the wait), and when a key
// was last tried (flowcontrol keeps it but does not expose it; the image
// pull back-off counts from it). It is owned by one pod worker, so tried
// has no lock.
type Backoff struct {
	fc *flowcontrol.Backoff
	// tried is when each key was last tried (Next).
	tried map[string]time.Time
}

func newBackoff(initial, max time.Duration, clk clock.Clock) *Backoff {
	fc := flowcontrol.NewBackOff(initial, max)
	fc.Clock = clk
	return &Backoff{fc: fc, tried: map[string]time.Time{}}
}

// Remaining is how long a retry of key must still wait after an event (a
// container's exit) at eventTime; 0 means go ahead.
func (b *Backoff) Remaining(key string, eventTime time.Time) time.Duration {
	if !b.fc.IsInBackOffSince(key, eventTime) {
		return 0
	}
	return b.fc.Get(key) - b.fc.Clock.Since(eventTime)
}

// Delay is the back-off currently applied to key (0 if none).
func (b *Backoff) Delay(key string) time.Duration { return b.fc.Get(key) }

// Next records a try of key now, after an event at eventTime, and grows
// the delay for the following try.
func (b *Backoff) Next(key string, eventTime time.Time) {
	b.fc.Next(key, eventTime)
	b.tried[key] = b.fc.Clock.Now()
}

// Reset forgets key.
func (b *Backoff) Reset(key string) {
	b.fc.Reset(key)
	delete(b.tried, key)
}

// RemainingSinceLast is how long the next try of key must wait after the
// last one; 0 means go ahead.
func (b *Backoff) RemainingSinceLast(key string) time.Duration {
	now := b.fc.Clock.Now()
	if !b.fc.IsInBackOffSinceUpdate(key, now) {
		return 0
	}
	return b.fc.Get(key) - now.Sub(b.tried[key])
}

// ExitTime is when a container instance stopped, or was made when it never
// ran.
func ExitTime(c *ContainerState) time.Time {
	if !c.FinishedAt.IsZero() && c.FinishedAt.Unix() > 0 {
		return c.FinishedAt
	}
	return c.CreatedAt
}

// PullWait is how long until the first image pull back-off ends.
func (p *Pod) PullWait() time.Duration {
	var out time.Duration
	for image := range p.PullErrors {
		if d := p.Pulls.RemainingSinceLast(image); d > 0 && (out == 0 || d < out) {
			out = d
		}
	}
	return out
}
