package volume

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

const (
	// refreshPercent of a token's lifetime may pass before it is renewed.
	refreshPercent = 80
	// maxTokenAge renews long-lived tokens daily, as the kubelet does.
	maxTokenAge = 24 * time.Hour
)

// tokenKey names one token file of a pod.
type tokenKey struct {
	volume string
	path   string
}

// issuedToken is a token written into a volume and when to renew it.
type issuedToken struct {
	token     string
	expires   time.Time
	refreshAt time.Time
}

// refreshTime is when a token valid from issued to expires is due.
func refreshTime(issued, expires time.Time) time.Time {
	at := issued.Add(expires.Sub(issued) * refreshPercent / 100)
	if latest := issued.Add(maxTokenAge); latest.Before(at) {
		at = latest
	}
	return at
}

// tokenCache keeps the tokens written for each pod.
type tokenCache struct {
	mu   sync.Mutex
	pods map[types.UID]map[tokenKey]issuedToken
}

// get returns the token for key unless it is missing or due at now.
func (c *tokenCache) get(uid types.UID, key tokenKey, now time.Time) (issuedToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tok, ok := c.pods[uid][key]
	if !ok || !now.Before(tok.refreshAt) {
		return issuedToken{}, false
	}
	return tok, true
}

func (c *tokenCache) put(uid types.UID, key tokenKey, tok issuedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pods == nil {
		c.pods = make(map[types.UID]map[tokenKey]issuedToken)
	}
	if c.pods[uid] == nil {
		c.pods[uid] = make(map[tokenKey]issuedToken)
	}
	c.pods[uid][key] = tok
}

func (c *tokenCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pods, uid)
}

// refreshTime returns the earliest renewal time of the pod's tokens.
func (c *tokenCache) refreshTime(uid types.UID) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var earliest time.Time
	for _, tok := range c.pods[uid] {
		if earliest.IsZero() || tok.refreshAt.Before(earliest) {
			earliest = tok.refreshAt
		}
	}
	return earliest, !earliest.IsZero()
}
