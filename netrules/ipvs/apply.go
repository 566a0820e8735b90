package ipvs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	goipt "github.com/coreos/go-iptables/iptables"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/proxy"
)

// ruleApplier applies the iptables part of IPVS mode with the same
// machinery as the iptables backend: the nf_tables or legacy binaries
// "iptables --version" names, one atomic "iptables-restore --noflush" per
// table, hooks inserted with go-iptables.
type ruleApplier struct {
	family proxy.Family
	exec   iptables.Exec
	hooks  iptables.Hooks
	// restore is the restore binary; "" until detect ran.
	restore string
	// applied is what the last successful restore of each table sent.
	applied map[iptables.Table][]byte
}

// detect picks, once, the restore binary of the backend iptables uses, and
// go-iptables on the matching iptables binary when no Hooks were given.
func (a *ruleApplier) detect(ctx context.Context) error {
	if a.restore != "" {
		return nil
	}
	base := "iptables"
	if a.family == proxy.IPv6 {
		base = "ip6tables"
	}
	out, err := a.exec.Run(ctx, nil, base, "--version")
	if err != nil {
		return fmt.Errorf("detecting the iptables backend: %w", err)
	}
	bin, mode := base, ""
	switch v := string(out); {
	case strings.Contains(v, "(nf_tables)"):
		bin, mode = base+"-nft", "nf_tables"
	case strings.Contains(v, "(legacy)"):
		bin, mode = base+"-legacy", "legacy"
	}
	if a.hooks == nil {
		proto := goipt.ProtocolIPv4
		if a.family == proxy.IPv6 {
			proto = goipt.ProtocolIPv6
		}
		ipt, err := goipt.New(goipt.IPFamily(proto), goipt.Path(bin), goipt.Timeout(5))
		if err != nil {
			return fmt.Errorf("setting up go-iptables on %s: %w", bin, err)
		}
		a.hooks = ipt
	}
	a.restore = bin + "-restore"
	klog.FromContext(ctx).Info("Detected the iptables backend for IPVS mode", "family", a.family, "mode", mode, "restore", a.restore)
	return nil
}

// apply restores the tables: all of them when full (and then checks the
// hooks), else only those whose payload differs from the last one applied.
// It returns the bytes sent.
func (a *ruleApplier) apply(ctx context.Context, rules Rules, full bool) (int, error) {
	if err := a.detect(ctx); err != nil {
		return 0, err
	}
	sent := 0
	for _, t := range rules.Tables {
		if !full && bytes.Equal(a.applied[t.Table], t.Data) {
			continue
		}
		delete(a.applied, t.Table)
		if _, err := a.exec.Run(ctx, t.Data, a.restore, "--noflush", "--wait"); err != nil {
			re := iptables.NewRestoreError(t.Table, t.Data, err)
			var ee *iptables.ExitError
			if errors.As(err, &ee) {
				klog.FromContext(ctx).Error(err, "iptables-restore rejected the IPVS mode payload; the table keeps its previous rules",
					"family", a.family, "table", t.Table, "line", re.Line, "lines", re.Context, "stderr", ee.Stderr)
			}
			return sent, re
		}
		a.applied[t.Table] = t.Data
		sent += len(t.Data)
	}
	if full {
		if err := a.ensureHooks(ctx); err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// forget drops the memory of what was applied, so that the next apply
// restores every table.
func (a *ruleApplier) forget() { clear(a.applied) }

// ensureHooks inserts the missing jumps from the built-in chains.
func (a *ruleApplier) ensureHooks(ctx context.Context) error {
	added, err := iptables.EnsureHooks(a.hooks, HookRules())
	if added > 0 {
		klog.FromContext(ctx).Info("Inserted jumps to berth's IPVS chains", "family", a.family, "rules", added)
	}
	return err
}
