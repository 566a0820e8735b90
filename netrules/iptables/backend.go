package iptables

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	goipt "github.com/coreos/go-iptables/iptables"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/proxy"
)

// Config configures a Backend.
type Config struct {
	// Family is the IP family the backend programs (iptables or
	// ip6tables).
	Family proxy.Family
	// MasqueradeBit is the packet-mark bit that asks for masquerade (0-31;
	// DefaultMasqueradeBit is kube-proxy's 0x4000).
	MasqueradeBit int
	// TCPBeLiberal: see RenderOptions.
	TCPBeLiberal bool
	// Exec runs the iptables binaries; nil runs them from PATH.
	Exec Exec
	// Hooks checks and inserts the jump rules in the built-in chains; nil
	// uses github.com/coreos/go-iptables on the binary that matches the
	// detected backend.
	Hooks Hooks
	// Clock times the syncs; nil is the real clock.
	Clock clock.PassiveClock
}

// Validate reports what is wrong with the configuration.
func (c *Config) Validate() error {
	if c.Family != proxy.IPv4 && c.Family != proxy.IPv6 {
		return fmt.Errorf("unknown IP family %d", c.Family)
	}
	return RenderOptions{MasqueradeBit: c.MasqueradeBit}.Validate()
}

// Backend programs proxy states into the kernel with iptables-restore: one
// atomic --noflush restore per table and sync. It implements proxy.Backend.
type Backend struct {
	family proxy.Family
	opts   RenderOptions
	exec   Exec
	hooks  Hooks
	clock  clock.PassiveClock

	// mu serializes syncs.
	mu sync.Mutex
	// bins are the binaries of the detected backend; empty until the
	// first sync detects it.
	bins binaries
	// needFull forces the next sync to be full: set at start and after any
	// failure.
	needFull bool
	// renderer remembers what the last successful sync left in the kernel.
	renderer *Renderer
	// globals fingerprints the node-wide settings of the last sync; a
	// change forces a full sync, since every service's chains use them.
	globals string
}

// binaries are the iptables binaries of one backend (nf_tables or legacy)
// and family.
type binaries struct {
	mode, iptables, restore, save string
}

var _ proxy.Backend = (*Backend)(nil)

// New returns a Backend. It runs nothing: the first Sync detects the
// iptables backend and is a full sync.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid iptables backend config: %w", err)
	}
	b := &Backend{
		family:   cfg.Family,
		opts:     RenderOptions{MasqueradeBit: cfg.MasqueradeBit, TCPBeLiberal: cfg.TCPBeLiberal},
		exec:     cfg.Exec,
		hooks:    cfg.Hooks,
		clock:    cfg.Clock,
		needFull: true,
	}
	b.renderer = NewRenderer(b.opts)
	if b.exec == nil {
		b.exec = OSExec{}
	}
	if b.clock == nil {
		b.clock = clock.RealClock{}
	}
	return b, nil
}

// Sync implements proxy.Backend.
func (b *Backend) Sync(ctx context.Context, state *proxy.State, changed map[string]bool) (proxy.SyncResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	logger := klog.FromContext(ctx)
	start := b.clock.Now()
	if state == nil {
		return proxy.SyncResult{}, fmt.Errorf("%w: nil state", ErrInvalidState)
	}
	if state.Family != b.family {
		return proxy.SyncResult{}, fmt.Errorf("%w: an IPv%d state for the IPv%d backend", ErrInvalidState, state.Family, b.family)
	}
	res, err := b.sync(ctx, state, changed)
	if err != nil {
		b.needFull = true
		b.renderer.Invalidate()
		return res, err
	}
	logger.V(2).Info("Synced iptables rules", "family", b.family, "full", res.Full,
		"services", len(state.Services), "rules", res.Rules, "bytes", res.Bytes, "took", b.clock.Since(start))
	return res, nil
}

func (b *Backend) sync(ctx context.Context, state *proxy.State, changed map[string]bool) (proxy.SyncResult, error) {
	if err := b.detect(ctx); err != nil {
		return proxy.SyncResult{}, err
	}
	globals := fmt.Sprint(state.ClusterCIDRs, state.MasqueradeAll, state.NodePortAddresses, state.NodeIPs)
	full := changed == nil || b.needFull || globals != b.globals
	var existing ChainSet
	if full {
		changed = nil
		var err error
		if existing, err = b.readChains(ctx); err != nil {
			return proxy.SyncResult{}, err
		}
	}
	var p Payload
	var err error
	if full {
		p, err = b.renderer.RenderStreamed(state, existing)
	} else {
		p, err = b.renderer.Render(state, changed, existing)
	}
	if err != nil {
		return proxy.SyncResult{}, fmt.Errorf("rendering iptables rules: %w", err)
	}
	res := proxy.SyncResult{Full: p.Full, Rules: p.Rules}
	for _, t := range p.Tables {
		n, err := b.restore(ctx, t)
		if err != nil {
			return proxy.SyncResult{}, err
		}
		res.Bytes += n
	}
	if full {
		added, err := EnsureHooks(b.hooks, HookRules())
		if err != nil {
			return proxy.SyncResult{}, err
		}
		if added > 0 {
			klog.FromContext(ctx).Info("Inserted jumps to berth chains", "family", b.family, "rules", added)
		}
	}
	b.globals, b.needFull = globals, false
	return res, nil
}

// detect finds out, once, whether iptables is the nf_tables or the legacy
// one ("iptables --version" says which) and picks the restore and save
// binaries of the same backend, so that berth's rules do not end up split
// across two rulesets when the node's alternatives are mixed.
func (b *Backend) detect(ctx context.Context) error {
	if b.bins.iptables != "" {
		return nil
	}
	base := "iptables"
	if b.family == proxy.IPv6 {
		base = "ip6tables"
	}
	out, err := b.exec.Run(ctx, nil, base, "--version")
	if err != nil {
		return fmt.Errorf("detecting the iptables backend: %w", err)
	}
	bins := binaries{iptables: base, restore: base + "-restore", save: base + "-save"}
	switch v := string(out); {
	case strings.Contains(v, "(nf_tables)"):
		bins = binaries{mode: "nf_tables", iptables: base + "-nft", restore: base + "-nft-restore", save: base + "-nft-save"}
	case strings.Contains(v, "(legacy)"):
		bins = binaries{mode: "legacy", iptables: base + "-legacy", restore: base + "-legacy-restore", save: base + "-legacy-save"}
	}
	if b.hooks == nil {
		proto := goipt.ProtocolIPv4
		if b.family == proxy.IPv6 {
			proto = goipt.ProtocolIPv6
		}
		ipt, err := goipt.New(goipt.IPFamily(proto), goipt.Path(bins.iptables), goipt.Timeout(5))
		if err != nil {
			return fmt.Errorf("setting up go-iptables on %s: %w", bins.iptables, err)
		}
		b.hooks = ipt
	}
	b.bins = bins
	klog.FromContext(ctx).Info("Detected the iptables backend", "family", b.family, "mode", bins.mode,
		"restore", bins.restore, "version", strings.TrimSpace(string(out)))
	return nil
}

// readChains lists the berth chains the kernel holds now.
func (b *Backend) readChains(ctx context.Context) (ChainSet, error) {
	chains := ChainSet{}
	for _, t := range []Table{TableFilter, TableNAT} {
		w := &chainWriter{chainParser: chainParser{set: chains}}
		if err := runTo(ctx, b.exec, w, b.bins.save, "-t", string(t)); err != nil {
			return nil, fmt.Errorf("listing the %s table: %w", t, err)
		}
		w.close()
	}
	return chains, nil
}

// restore applies one table's payload and returns its size; on a rejection
// it logs the lines around the one iptables-restore complains about.
func (b *Backend) restore(ctx context.Context, t TableData) (int, error) {
	n, err := runFrom(ctx, b.exec, t, b.bins.restore, "--noflush", "--wait")
	if err == nil {
		return int(n), nil
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		return 0, &RestoreError{Table: t.Table, Err: err}
	}
	// A streamed payload is rendered again, the same, for the lines (as far
	// as it renders: the restore already read it whole).
	data, _ := t.bytes()
	re := NewRestoreError(t.Table, data, err)
	klog.FromContext(ctx).Error(err, "iptables-restore rejected the payload; the table keeps its previous rules",
		"family", b.family, "table", t.Table, "line", re.Line, "lines", re.Context, "stderr", ee.Stderr)
	return 0, re
}
