package ipvs

import (
	"bytes"
	"context"

	"github.com/berthnode/berth/netrules/xtables"
)

// ruleApplier applies the iptables part of IPVS mode through the same
// lower layer as the iptables backend (the nf_tables or legacy binaries
// "iptables --version" names, one atomic "iptables-restore --noflush" per
// table, hooks inserted with go-iptables), restoring on a partial sync only
// the tables whose rules changed.
type ruleApplier struct {
	tables *xtables.Applier
	// applied is what the last successful restore of each table sent.
	applied map[xtables.Table][]byte
}

// apply restores the tables: all of them when full (and then checks the
// hooks), else only those whose payload differs from the last one applied.
// It returns the bytes sent.
func (a *ruleApplier) apply(ctx context.Context, rules Rules, full bool) (int, error) {
	if err := a.tables.Detect(ctx); err != nil {
		return 0, err
	}
	sent := 0
	for _, t := range rules.Tables {
		if !full && bytes.Equal(a.applied[t.Table], t.Data) {
			continue
		}
		delete(a.applied, t.Table)
		n, err := a.tables.Restore(ctx, t)
		if err != nil {
			return sent, err
		}
		a.applied[t.Table] = t.Data
		sent += n
	}
	if full {
		if err := a.tables.EnsureHooks(ctx, HookRules()); err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// forget drops the memory of what was applied, so that the next apply
// restores every table.
func (a *ruleApplier) forget() { clear(a.applied) }
