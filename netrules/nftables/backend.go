package nftables

import (
	"context"
	"fmt"
	"sync"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/proxy"
)

// DefaultMasqueradeBit is kube-proxy's default: mark 0x4000.
const DefaultMasqueradeBit = 14

// Config configures a Backend.
type Config struct {
	// Family is the IP family the backend programs (table ip berth or ip6
	// berth).
	Family proxy.Family
	// MasqueradeBit is the packet-mark bit that asks for masquerade (0-31).
	MasqueradeBit int
	// NetNS is a file descriptor of the network namespace to program; 0 is
	// the process's own (tests pass their namespace's).
	NetNS int
	// Clock times the syncs; nil is the real clock.
	Clock clock.PassiveClock
}

// Validate reports what is wrong with the configuration.
func (c *Config) Validate() error {
	if c.Family != proxy.IPv4 && c.Family != proxy.IPv6 {
		return fmt.Errorf("unknown IP family %d", c.Family)
	}
	if c.MasqueradeBit < 0 || c.MasqueradeBit > 31 {
		return fmt.Errorf("masquerade bit %d is not in 0-31", c.MasqueradeBit)
	}
	return nil
}

// Backend programs proxy states into berth's nftables table of one family,
// one netlink transaction per sync. It implements proxy.Backend.
type Backend struct {
	cfg   Config
	clock clock.PassiveClock

	// mu serializes syncs.
	mu sync.Mutex
	// plans is what the last successful sync left in the kernel, by
	// service-port key; nil before the first one and after a failure.
	plans map[string]*servicePlan
}

var _ proxy.Backend = (*Backend)(nil)

// New returns a Backend. It touches nothing until the first Sync.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid nftables backend config: %w", err)
	}
	b := &Backend{cfg: cfg, clock: cfg.Clock}
	if b.clock == nil {
		b.clock = clock.RealClock{}
	}
	return b, nil
}

// Sync implements proxy.Backend. A full sync (nil changed) deletes and
// recreates the table in one transaction; a partial one rewrites the
// chains, round-robin maps and shared-map elements of the changed service
// ports only. Either commits whole or not at all: after an error the
// kernel keeps the previous rules, and the next partial sync is refused
// with proxy.ErrFullSyncRequired.
func (b *Backend) Sync(ctx context.Context, state *proxy.State, changed map[string]bool) (proxy.SyncResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := b.clock.Now()
	if state == nil || state.Family != b.cfg.Family {
		return proxy.SyncResult{}, fmt.Errorf("%w: not a state of IPv%d", ErrInvalidState, b.cfg.Family)
	}
	if changed != nil && b.plans == nil {
		return proxy.SyncResult{}, fmt.Errorf("nftables: a partial sync without a successful one before it: %w", proxy.ErrFullSyncRequired)
	}
	plans, err := b.sync(state, changed)
	if err != nil {
		b.plans = nil
		return proxy.SyncResult{}, err
	}
	b.plans = plans
	res := proxy.SyncResult{Full: changed == nil}
	for _, p := range plans {
		res.Rules += p.rules()
	}
	klog.FromContext(ctx).V(2).Info("Synced nftables rules", "family", b.cfg.Family, "full", res.Full,
		"services", len(state.Services), "rules", res.Rules, "took", b.clock.Since(start))
	return res, nil
}

// plan renders the service ports of state that keys selects (nil: all).
func plan(state *proxy.State, g *globals, keys map[string]bool) (map[string]*servicePlan, error) {
	out := make(map[string]*servicePlan, len(state.Services))
	for i := range state.Services {
		s := &state.Services[i]
		k := s.Name.Key()
		if keys != nil && !keys[k] {
			continue
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%w: two service ports with key %s", ErrInvalidState, k)
		}
		p, err := planService(s, g)
		if err != nil {
			return nil, err
		}
		out[k] = p
	}
	return out, nil
}

func (b *Backend) sync(state *proxy.State, changed map[string]bool) (map[string]*servicePlan, error) {
	g, err := newGlobals(state, Options{MasqueradeBit: b.cfg.MasqueradeBit})
	if err != nil {
		return nil, err
	}
	planned, err := plan(state, g, changed)
	if err != nil {
		return nil, err
	}
	c, err := gnft.New(gnft.WithNetNSFd(b.cfg.NetNS), gnft.WithSockOptions(bigBuffers))
	if err != nil {
		return nil, fmt.Errorf("nftables: opening netlink: %w", err)
	}
	t := &txn{c: c, f: g.f, table: &gnft.Table{Family: g.f.table, Name: TableName}, sets: map[string]*gnft.Set{}}
	if changed == nil {
		t.full(g.topLevel(), planned)
	} else {
		t.partial(b.plans, planned, changed)
		merged := make(map[string]*servicePlan, len(b.plans))
		for k, p := range b.plans {
			if !changed[k] {
				merged[k] = p
			}
		}
		for k, p := range planned {
			merged[k] = p
		}
		planned = merged
	}
	if t.err != nil {
		return nil, t.err
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("nftables: committing the %s %s table: %w", g.f.name, TableName, err)
	}
	return planned, nil
}

// bigBuffers lets a whole table's transaction through: the kernel takes a
// batch in one message and answers each of its messages with an ack.
func bigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 1<<30); serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<30)
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setting the netlink buffers: %w", serr)
	}
	return nil
}

// txn builds one netlink transaction.
type txn struct {
	c     *gnft.Conn
	f     *fam
	table *gnft.Table
	sets  map[string]*gnft.Set
	err   error
}

func (t *txn) chain(name string) *gnft.Chain { return &gnft.Chain{Table: t.table, Name: name} }

func (t *txn) addRules(chain *gnft.Chain, rules []rule) {
	for _, r := range rules {
		t.c.AddRule(&gnft.Rule{Table: t.table, Chain: chain, Exprs: r.exprs})
	}
}

func (t *txn) addSet(name string, key []gnft.SetDatatype) *gnft.Set {
	s := &gnft.Set{Table: t.table, Name: name, IsMap: true, DataType: gnft.TypeVerdict}
	if len(key) == 1 {
		s.KeyType = key[0]
	} else {
		s.KeyType, s.Concatenation = gnft.MustConcatSetType(key...), true
	}
	if err := t.c.AddSet(s, nil); err != nil && t.err == nil {
		t.err = fmt.Errorf("nftables: map %s: %w", name, err)
	}
	t.sets[name] = s
	return s
}

func (t *txn) set(name string) *gnft.Set {
	if s, ok := t.sets[name]; ok {
		return s
	}
	return &gnft.Set{Table: t.table, Name: name, IsMap: true, DataType: gnft.TypeVerdict}
}

func (t *txn) elems(set string, es []elem, del bool) {
	if len(es) == 0 {
		return
	}
	out := make([]gnft.SetElement, len(es))
	for i, e := range es {
		out[i] = gnft.SetElement{Key: padKey(e.key), VerdictData: e.v}
	}
	var err error
	if del {
		err = t.c.SetDeleteElements(t.set(set), out)
	} else {
		err = t.c.SetAddElements(t.set(set), out)
	}
	if err != nil && t.err == nil {
		t.err = fmt.Errorf("nftables: elements of %s: %w", set, err)
	}
}

// full replaces the whole table: delete it and build it again, in one
// transaction.
func (t *txn) full(top topLevel, plans map[string]*servicePlan) {
	t.c.AddTable(t.table)
	t.c.DelTable(t.table)
	t.c.AddTable(t.table)
	for _, m := range t.f.sharedMaps() {
		t.addSet(m.name, m.key)
	}
	for _, c := range top.chains {
		t.c.AddChain(t.chain(c.name))
	}
	for _, p := range plans {
		t.addServiceObjects(p, nil)
	}
	for _, c := range top.chains {
		t.addRules(t.chain(c.name), c.rules)
	}
	for _, p := range plans {
		t.fillService(p)
	}
	for _, bc := range top.base {
		ch := t.c.AddChain(&gnft.Chain{Table: t.table, Name: bc.name, Type: bc.typ, Hooknum: bc.hook, Priority: bc.priority})
		t.addRules(ch, bc.rules)
	}
}

// addServiceObjects adds the chains and round-robin maps of p that old
// (the same port's previous plan, or nil) does not have, and flushes those
// it has.
func (t *txn) addServiceObjects(p, old *servicePlan) {
	oldChains, oldMaps := map[string]bool{}, map[string]bool{}
	if old != nil {
		for _, c := range old.chains {
			oldChains[c.name] = true
		}
		for _, m := range old.rr {
			oldMaps[m.name] = true
		}
	}
	for _, c := range p.chains {
		if !oldChains[c.name] {
			t.c.AddChain(t.chain(c.name))
		}
	}
	for _, m := range p.rr {
		if oldMaps[m.name] {
			t.c.FlushSet(t.set(m.name))
		} else {
			t.addSet(m.name, []gnft.SetDatatype{gnft.TypeInteger})
		}
	}
}

// fillService adds p's rules, round-robin elements and shared-map
// elements.
func (t *txn) fillService(p *servicePlan) {
	for _, m := range p.rr {
		t.elems(m.name, m.elems, false)
	}
	for _, c := range p.chains {
		t.addRules(t.chain(c.name), c.rules)
	}
	for _, m := range t.f.sharedMaps() {
		t.elems(m.name, p.elems[m.name], false)
	}
}

// partial rewrites the changed service ports: their old shared-map
// elements go, their old chains are flushed (and deleted when no longer
// used), then the new objects are added and filled.
func (t *txn) partial(old, planned map[string]*servicePlan, changed map[string]bool) {
	for k := range changed {
		o := old[k]
		if o == nil {
			continue
		}
		for _, m := range t.f.sharedMaps() {
			t.elems(m.name, o.elems[m.name], true)
		}
		for _, c := range o.chains {
			t.c.FlushChain(t.chain(c.name))
		}
	}
	for k := range changed {
		if p := planned[k]; p != nil {
			t.addServiceObjects(p, old[k])
		}
	}
	for k := range changed {
		o, p := old[k], planned[k]
		if o == nil {
			continue
		}
		keepChains, keepMaps := map[string]bool{}, map[string]bool{}
		if p != nil {
			for _, c := range p.chains {
				keepChains[c.name] = true
			}
			for _, m := range p.rr {
				keepMaps[m.name] = true
			}
		}
		for _, m := range o.rr {
			if !keepMaps[m.name] {
				t.c.DelSet(t.set(m.name))
			}
		}
		for _, c := range o.chains {
			if !keepChains[c.name] {
				t.c.DelChain(t.chain(c.name))
			}
		}
	}
	for k := range changed {
		if p := planned[k]; p != nil {
			t.fillService(p)
		}
	}
}

var _ = expr.VerdictGoto
