package proxy

import (
	"context"
	"errors"
)

// ErrFullSyncRequired is returned by a Backend asked for a partial sync it
// cannot do, because it does not know what the kernel holds: it has not
// synced since it started, its last sync failed, or it found out between
// syncs that the kernel may differ from what it programmed (IPVS: a failed
// check of the draining destinations). The Proxier then syncs in full at
// once.
var ErrFullSyncRequired = errors.New("a full sync is required")

// Backend programs a State into the kernel: iptables, IPVS, nftables. It
// keeps no Kubernetes logic: Compute made every decision.
//
// Whether a sync is full is decided by the caller alone (the Proxier; see
// syncFamily): a backend does what it is asked, and reports what only it
// can know with an error.
type Backend interface {
	// Sync makes the kernel match state. changed holds the Name.Key() of
	// the service ports whose rules may differ from the last successful
	// Sync; nil asks for a full sync, which rewrites every service's rules
	// and removes what the backend programmed for services no longer in
	// state. A partial sync (non-nil changed, empty for none) touches the
	// changed ports only and trusts the backend's memory for the others:
	// the caller asks one only after a successful Sync of the same
	// node-wide settings (every field of State but Services), since those
	// settings are part of every service's rules. A backend that cannot
	// trust its memory refuses it with ErrFullSyncRequired and changes
	// nothing. After any other error the kernel may hold some of the
	// changes: the caller's next sync must be full.
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
