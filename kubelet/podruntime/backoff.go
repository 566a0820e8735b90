package podruntime

import "time"

// Back-off bounds of crashing containers and failing image pulls: the
// kubelet's 10 s doubling up to 5 min.
const (
	initialBackoff = 10 * time.Second
	maxBackoff     = 300 * time.Second
)

// Backoff is a per-key exponential back-off, owned by one pod worker (so it
// has no lock). A key's delay starts at initial and doubles up to max at each
// Next; it starts over when the event that asks for the next try comes more
// than 2×max after the last try, which for a crashing container means it ran
// for 10 minutes.
type Backoff struct {
	initial, max time.Duration
	entries      map[string]backoffEntry
}

type backoffEntry struct {
	delay      time.Duration
	lastUpdate time.Time
}

func newBackoff(initial, max time.Duration) *Backoff {
	return &Backoff{initial: initial, max: max, entries: map[string]backoffEntry{}}
}

// Remaining is how long, at now, a retry of key must still wait after an
// event (a container's exit) at eventTime; 0 means go ahead.
func (b *Backoff) Remaining(key string, eventTime, now time.Time) time.Duration {
	e, ok := b.entries[key]
	if !ok || b.expired(e, eventTime) {
		return 0
	}
	if wait := e.delay - now.Sub(eventTime); wait > 0 {
		return wait
	}
	return 0
}

// Delay is the back-off currently applied to key (0 if none).
func (b *Backoff) Delay(key string) time.Duration { return b.entries[key].delay }

// Next records a try of key at now, after an event at eventTime, and grows
// the delay for the following try.
func (b *Backoff) Next(key string, eventTime, now time.Time) {
	e, ok := b.entries[key]
	if !ok || b.expired(e, eventTime) {
		e = backoffEntry{delay: b.initial}
	} else {
		e.delay = min(2*e.delay, b.max)
	}
	e.lastUpdate = now
	b.entries[key] = e
}

// Reset forgets key.
func (b *Backoff) Reset(key string) { delete(b.entries, key) }

func (b *Backoff) expired(e backoffEntry, eventTime time.Time) bool {
	return eventTime.Sub(e.lastUpdate) > 2*b.max
}

// RemainingSinceLast is how long, at now, the next try of key must wait
// after the last one; 0 means go ahead.
func (b *Backoff) RemainingSinceLast(key string, now time.Time) time.Duration {
	e, ok := b.entries[key]
	if !ok {
		return 0
	}
	if wait := e.delay - now.Sub(e.lastUpdate); wait > 0 {
		return wait
	}
	return 0
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
	now := p.r.clock.Now()
	for image := range p.PullErrors {
		if d := p.Pulls.RemainingSinceLast(image, now); d > 0 && (out == 0 || d < out) {
			out = d
		}
	}
	return out
}
