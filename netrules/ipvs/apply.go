package ipvs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
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
			re := restoreError(t, err)
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
	added := 0
	for _, h := range HookRules() {
		ok, err := a.hooks.Exists(string(h.Table), h.Chain, h.Rule...)
		if err != nil {
			return fmt.Errorf("checking the jump from %s %s: %w", h.Table, h.Chain, err)
		}
		if ok {
			continue
		}
		if err := a.hooks.Insert(string(h.Table), h.Chain, 1, h.Rule...); err != nil {
			return fmt.Errorf("inserting the jump from %s %s: %w", h.Table, h.Chain, err)
		}
		added++
	}
	if added > 0 {
		klog.FromContext(ctx).Info("Inserted jumps to berth's IPVS chains", "family", a.family, "rules", added)
	}
	return nil
}

// restoreError builds the error of a rejected payload with the lines
// around the one iptables-restore names (the iptables backend's
// constructor of RestoreError is not exported; this is its equivalent).
func restoreError(t iptables.TableData, err error) *iptables.RestoreError {
	re := &iptables.RestoreError{Table: t.Table, Err: err}
	var ee *iptables.ExitError
	if !errors.As(err, &ee) {
		return re
	}
	if re.Line = failedLine(ee.Stderr); re.Line == 0 {
		return re
	}
	lines := strings.Split(string(t.Data), "\n")
	for n := max(re.Line-2, 1); n <= min(re.Line+2, len(lines)); n++ {
		re.Context = append(re.Context, fmt.Sprintf("%d: %s", n, lines[n-1]))
	}
	return re
}

// failedLine finds the line number in iptables-restore's complaints ("Error
// occurred at line: 16", "line 4: CHAIN_DEL failed", "line 4 failed"); 0
// when there is none.
func failedLine(stderr string) int {
	for rest := stderr; ; {
		i := strings.Index(rest, "line")
		if i < 0 {
			return 0
		}
		rest = rest[i+len("line"):]
		digits := strings.TrimLeft(strings.TrimPrefix(rest, ":"), " ")
		end := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(digits)
		}
		if n, err := strconv.Atoi(digits[:end]); err == nil && n > 0 {
			return n
		}
	}
}
