package xtables

import (
	"fmt"

	"github.com/berthnode/berth/proxy"
)

// Resync decides, for a backend, whether a sync must be full: the first
// one, the one after a failure, one the caller asks full (nil changes), and
// one whose node-wide settings differ from the last successful sync's,
// since every service's rules use them. The zero Resync asks for a full
// sync.
type Resync struct {
	// synced tells that the last sync succeeded; globals fingerprints its
	// node-wide settings.
	synced  bool
	globals string
}

// Full tells whether the sync of state with the changed service ports
// (nil: all) must be full, and returns the fingerprint of its node-wide
// settings, to hand to Done once it succeeded.
func (r *Resync) Full(state *proxy.State, changed map[string]bool) (bool, string) {
	globals := Fingerprint(state)
	return changed == nil || !r.synced || globals != r.globals, globals
}

// Done records a successful sync of settings with the fingerprint globals.
func (r *Resync) Done(globals string) { r.synced, r.globals = true, globals }

// Failed makes the next sync full.
func (r *Resync) Failed() { r.synced = false }

// Fingerprint identifies the node-wide settings of a State that every
// service's rules depend on: the cluster CIDRs, masqueradeAll, the
// node-port addresses and the node's IPs.
func Fingerprint(state *proxy.State) string {
	return fmt.Sprint(state.ClusterCIDRs, state.MasqueradeAll, state.NodePortAddresses, state.NodeIPs)
}
