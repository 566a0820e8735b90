// Package runner holds the bounded-frequency runner that drives berth's
// sync loops, as kube-proxy's: work runs when poked, but never more often
// than a minimum interval, at least once per maximum interval, and again
// soon after a failure.
package runner
