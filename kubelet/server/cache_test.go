package server

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestTTLCache(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	c := newTTLCache[string](clock)
	k := sha256.Sum256([]byte("k"))
	c.put(k, "v", time.Minute)
	if v, ok := c.get(k); !ok || v != "v" {
		t.Fatalf("get = %q %v", v, ok)
	}
	clock.Step(time.Minute)
	if _, ok := c.get(k); ok {
		t.Error("entry kept past its TTL")
	}
	c.put(k, "v", 0)
	if _, ok := c.get(k); ok {
		t.Error("a TTL of 0 kept the entry")
	}
}

func TestTTLCacheBounded(t *testing.T) {
	clock := clocktesting.NewFakeClock(time.Now())
	c := newTTLCache[int](clock)
	for i := range maxCacheEntries + 100 {
		c.put(sha256.Sum256(fmt.Appendf(nil, "%d", i)), i, time.Hour)
	}
	if n := c.len(); n > maxCacheEntries {
		t.Errorf("%d entries, bound is %d", n, maxCacheEntries)
	}
	last := sha256.Sum256(fmt.Appendf(nil, "%d", maxCacheEntries+99))
	if _, ok := c.get(last); !ok {
		t.Error("the newest entry was evicted")
	}
}
