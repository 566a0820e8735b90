package server

import (
	"time"

	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
)

// maxCacheEntries bounds a decision cache: enough for every client a node
// sees (the API server, metrics scrapers, a few operators), small enough
// that a flood of distinct tokens cannot grow the daemon. When it is full,
// the least recently used answer goes: a miss only costs one more review.
const maxCacheEntries = 4096

// ttlCache keeps answers from the API server for a while, keyed by a hash of
// what was asked. It is apimachinery's LRUExpireCache (the cache of the
// API server's webhook authorizer), typed for its callers.
type ttlCache[V any] struct {
	lru *cache.LRUExpireCache
}

func newTTLCache[V any](c clock.PassiveClock) *ttlCache[V] {
	return &ttlCache[V]{lru: cache.NewLRUExpireCacheWithClock(maxCacheEntries, c)}
}

// get returns the unexpired value under key.
func (c *ttlCache[V]) get(key [32]byte) (V, bool) {
	v, ok := c.lru.Get(key)
	if !ok {
		var zero V
		return zero, false
	}
	return v.(V), true
}

// put keeps value under key for ttl; a ttl of 0 keeps nothing.
func (c *ttlCache[V]) put(key [32]byte, value V, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	// LRUExpireCache still answers at the instant an entry expires; an
	// answer kept for ttl is not given at ttl, so it ends a nanosecond
	// earlier.
	c.lru.Add(key, value, ttl-time.Nanosecond)
}

// len tells how many unexpired entries are kept.
func (c *ttlCache[V]) len() int { return len(c.lru.Keys()) }
