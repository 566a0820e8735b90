package iptables

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/netrules/xtables"
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
	Exec xtables.Exec
	// Hooks checks and inserts the jump rules in the built-in chains; nil
	// uses github.com/coreos/go-iptables on the binary that matches the
	// detected backend.
	Hooks xtables.Hooks
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
	clock  clock.PassiveClock

	// mu serializes syncs.
	mu sync.Mutex
	// tables runs the binaries of the iptables backend it detects on the
	// first sync.
	tables *xtables.Applier
	// renderer remembers what the last successful sync left in the kernel;
	// it remembers nothing before the first one and after a failure, when
	// a partial sync is refused.
	renderer *Renderer
}

var _ proxy.Backend = (*Backend)(nil)

// New returns a Backend. It runs nothing: the first Sync, which must be a
// full one, detects the iptables backend.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid iptables backend config: %w", err)
	}
	b := &Backend{
		family:   cfg.Family,
		clock:    cfg.Clock,
		tables:   &xtables.Applier{Family: cfg.Family, Backend: "iptables", Exec: cfg.Exec, Hooks: cfg.Hooks},
		renderer: NewRenderer(RenderOptions{MasqueradeBit: cfg.MasqueradeBit, TCPBeLiberal: cfg.TCPBeLiberal}),
	}
	if b.clock == nil {
		b.clock = clock.RealClock{}
	}
	return b, nil
}

// Sync implements proxy.Backend: a full sync (nil changed) lists the berth
// chains the kernel holds, streams a payload of every service port and
// checks the hooks; a partial one restores the chains of the changed ports
// only (Renderer.Render). A partial sync before the first successful one,
// or after a failed one, is refused with proxy.ErrFullSyncRequired.
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
	if changed != nil && !b.renderer.valid {
		return proxy.SyncResult{}, fmt.Errorf("iptables: a partial sync without a successful one before it: %w", proxy.ErrFullSyncRequired)
	}
	res, err := b.sync(ctx, state, changed)
	if err != nil {
		b.renderer.Invalidate()
		return res, err
	}
	logger.V(2).Info("Synced iptables rules", "family", b.family, "full", res.Full,
		"services", len(state.Services), "rules", res.Rules, "bytes", res.Bytes, "took", b.clock.Since(start))
	return res, nil
}

func (b *Backend) sync(ctx context.Context, state *proxy.State, changed map[string]bool) (proxy.SyncResult, error) {
	if err := b.tables.Detect(ctx); err != nil {
		return proxy.SyncResult{}, err
	}
	full := changed == nil
	var p Payload
	var err error
	if full {
		var existing ChainSet
		if existing, err = b.readChains(ctx); err != nil {
			return proxy.SyncResult{}, err
		}
		p, err = b.renderer.RenderStreamed(state, existing)
	} else {
		p, err = b.renderer.Render(state, changed, nil)
	}
	if err != nil {
		return proxy.SyncResult{}, fmt.Errorf("rendering iptables rules: %w", err)
	}
	res := proxy.SyncResult{Full: p.Full, Rules: p.Rules}
	for _, t := range p.Tables {
		n, err := b.tables.Restore(ctx, t)
		if err != nil {
			return proxy.SyncResult{}, err
		}
		res.Bytes += n
	}
	if full {
		if err := b.tables.EnsureHooks(ctx, HookRules()); err != nil {
			return proxy.SyncResult{}, err
		}
	}
	return res, nil
}

// readChains lists the berth chains the kernel holds now.
func (b *Backend) readChains(ctx context.Context) (ChainSet, error) {
	chains := ChainSet{}
	for _, t := range []xtables.Table{xtables.TableFilter, xtables.TableNAT} {
		s := xtables.NewChainScanner(chains.addOwn)
		if err := b.tables.Save(ctx, t, s); err != nil {
			return nil, fmt.Errorf("listing the %s table: %w", t, err)
		}
		s.Close()
	}
	return chains, nil
}
