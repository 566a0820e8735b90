package server

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// maxCacheEntries bounds a decision cache: enough for every client a node
// sees (the API server, metrics scrapers, a few operators), small enough
// that a flood of distinct tokens cannot grow the daemon.
const maxCacheEntries = 4096

// ttlCache keeps answers from the API server for a while, keyed by a hash of
// what was asked.
type ttlCache[V any] struct {
	clock clock.PassiveClock
	mu    sync.Mutex
	items map[[32]byte]cacheEntry[V]
}

type cacheEntry[V any] struct {
	value   V
	expires time.Time
}

func newTTLCache[V any](c clock.PassiveClock) *ttlCache[V] {
	return &ttlCache[V]{clock: c, items: map[[32]byte]cacheEntry[V]{}}
}

// get returns the unexpired value under key.
func (c *ttlCache[V]) get(key [32]byte) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	if !c.clock.Now().Before(e.expires) {
		delete(c.items, key)
		var zero V
		return zero, false
	}
	return e.value, true
}

// put keeps value under key for ttl; a ttl of 0 keeps nothing.
func (c *ttlCache[V]) put(key [32]byte, value V, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if len(c.items) >= maxCacheEntries {
		c.evictLocked(now)
	}
	c.items[key] = cacheEntry[V]{value: value, expires: now.Add(ttl)}
}

// evictLocked drops the expired entries and, if the cache is still full,
// enough others to make room: a miss only costs one more review.
func (c *ttlCache[V]) evictLocked(now time.Time) {
	for k, e := range c.items {
		if !now.Before(e.expires) {
			delete(c.items, k)
		}
	}
	for k := range c.items {
		if len(c.items) < maxCacheEntries {
			break
		}
		delete(c.items, k)
	}
}

// len tells how many entries are kept.
func (c *ttlCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
