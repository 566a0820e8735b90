package xtables

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	goipt "github.com/coreos/go-iptables/iptables"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/proxy"
)

// Binaries are the iptables binaries of one backend (nf_tables or legacy)
// and family.
type Binaries struct {
	// Mode is "nf_tables" or "legacy", "" when "--version" named neither.
	Mode string
	// IPTables, Restore and Save are the binaries' names.
	IPTables, Restore, Save string
}

// Applier runs one family's iptables binaries for a backend: it finds out,
// on first use, whether iptables is the nf_tables or the legacy one
// ("iptables --version" says which) and from then on uses that backend's
// restore and save binaries, and go-iptables on its iptables binary for the
// hooks, so that berth's rules do not end up split across two rulesets when
// the node's alternatives are mixed. An Applier is not safe for concurrent
// use: a backend serializes its syncs.
type Applier struct {
	// Family is the IP family of the binaries (iptables or ip6tables).
	Family proxy.Family
	// Backend names the backend in logs ("iptables", "IPVS").
	Backend string
	// Exec runs the binaries; nil runs them from PATH (OSExec).
	Exec Exec
	// Hooks checks and inserts the hooks; nil uses go-iptables on the
	// detected iptables binary.
	Hooks Hooks

	// bins are the detected binaries; empty until Detect ran.
	bins Binaries
}

// Detect finds out, once, which iptables backend the node uses.
func (a *Applier) Detect(ctx context.Context) error {
	if a.bins.IPTables != "" {
		return nil
	}
	if a.Exec == nil {
		a.Exec = OSExec{}
	}
	base := "iptables"
	if a.Family == proxy.IPv6 {
		base = "ip6tables"
	}
	out, err := a.Exec.Run(ctx, nil, base, "--version")
	if err != nil {
		return fmt.Errorf("detecting the iptables backend: %w", err)
	}
	bins := Binaries{IPTables: base, Restore: base + "-restore", Save: base + "-save"}
	switch v := string(out); {
	case strings.Contains(v, "(nf_tables)"):
		bins = Binaries{Mode: "nf_tables", IPTables: base + "-nft", Restore: base + "-nft-restore", Save: base + "-nft-save"}
	case strings.Contains(v, "(legacy)"):
		bins = Binaries{Mode: "legacy", IPTables: base + "-legacy", Restore: base + "-legacy-restore", Save: base + "-legacy-save"}
	}
	if a.Hooks == nil {
		proto := goipt.ProtocolIPv4
		if a.Family == proxy.IPv6 {
			proto = goipt.ProtocolIPv6
		}
		ipt, err := goipt.New(goipt.IPFamily(proto), goipt.Path(bins.IPTables), goipt.Timeout(5))
		if err != nil {
			return fmt.Errorf("setting up go-iptables on %s: %w", bins.IPTables, err)
		}
		a.Hooks = ipt
	}
	a.bins = bins
	klog.FromContext(ctx).Info("Detected the iptables backend", "backend", a.Backend, "family", a.Family, "mode", bins.Mode,
		"restore", bins.Restore, "version", strings.TrimSpace(string(out)))
	return nil
}

// Binaries returns the detected binaries; empty before Detect.
func (a *Applier) Binaries() Binaries { return a.bins }

// Save writes iptables-save's output of one table to w, as it comes.
func (a *Applier) Save(ctx context.Context, table Table, w io.Writer) error {
	if err := a.Detect(ctx); err != nil {
		return err
	}
	return RunTo(ctx, a.Exec, w, a.bins.Save, "-t", string(table))
}

// Restore applies one table's input with one atomic
// "iptables-restore --noflush --wait" and returns its size. When
// iptables-restore rejects the input, the table keeps its previous rules;
// the lines around the one it names are logged and returned in a
// *RestoreError.
func (a *Applier) Restore(ctx context.Context, t TableData) (int, error) {
	if err := a.Detect(ctx); err != nil {
		return 0, err
	}
	n, err := RunFrom(ctx, a.Exec, t, a.bins.Restore, "--noflush", "--wait")
	if err == nil {
		return int(n), nil
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		return 0, &RestoreError{Table: t.Table, Err: err}
	}
	// A streamed input is rendered again, the same, for the lines (as far
	// as it renders: the restore already read it whole).
	data, _ := t.Bytes()
	re := NewRestoreError(t.Table, data, err)
	klog.FromContext(ctx).Error(err, "iptables-restore rejected the payload; the table keeps its previous rules",
		"backend", a.Backend, "family", a.Family, "table", t.Table, "line", re.Line, "lines", re.Context, "stderr", ee.Stderr)
	return 0, re
}

// EnsureHooks inserts the missing ones of hooks (see EnsureHooks) and logs
// how many it added.
func (a *Applier) EnsureHooks(ctx context.Context, hooks []Hook) error {
	if err := a.Detect(ctx); err != nil {
		return err
	}
	added, err := EnsureHooks(a.Hooks, hooks)
	if added > 0 {
		klog.FromContext(ctx).Info("Inserted jumps to berth chains", "backend", a.Backend, "family", a.Family, "rules", added)
	}
	return err
}
