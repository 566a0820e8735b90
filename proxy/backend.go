package proxy

import "context"

// Backend programs a State into the kernel: iptables, IPVS, nftables. It
// keeps no Kubernetes logic: Compute made every decision.
type Backend interface {
	// Sync makes the kernel match state. changed holds the Name.Key() of
	// the service ports whose rules may differ from the last successful
	// Sync; nil asks for a full sync (the first one, after an error, and
	// periodically). A backend may rewrite more than changed, never less,
	// and removes what it programmed for services no longer in state.
	// After an error the kernel holds the previous rules: the caller
	// retries with a full sync.
	Sync(ctx context.Context, state *State, changed map[string]bool) (SyncResult, error)
}

// SyncResult says what a Sync did, for metrics and logs.
type SyncResult struct {
	// Full tells whether every service's rules were rewritten.
	Full bool
	// Rules is the number of rules (or virtual servers and destinations)
	// the backend now holds.
	Rules int
	// Bytes is the size of what was sent to the kernel (for iptables, the
	// iptables-restore payload).
	Bytes int
}
