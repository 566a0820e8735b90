package nftables

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	gnft "github.com/google/nftables"
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
	// TCPBeLiberal: see Options.
	TCPBeLiberal bool
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
	// alloc hands out the balancing chains' numgen ranges; refs counts
	// the ports that hold each shared element (by map and element id).
	alloc *allocator
	refs  map[string]int
	// conn is the netlink connection, kept open between syncs (opening
	// one costs more than a small sync: about 9 ms); dropped after an
	// error, so that nothing a failed transaction left unread is read by
	// the next.
	conn *gnft.Conn
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
	plans, err := b.sync(ctx, state, changed)
	if err != nil {
		b.plans = nil
		b.closeConn()
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

// Close closes the backend's netlink connection; the next Sync opens
// another. The rules stay in the kernel.
func (b *Backend) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closeConn()
}

func (b *Backend) closeConn() {
	if b.conn != nil {
		_ = b.conn.CloseLasting() // nothing to do about a failed close
		b.conn = nil
	}
}

// plan renders the service ports of state that keys selects (nil: all).
// State.Services is sorted by key: the ports of a partial sync are found
// by binary search, so that its cost does not grow with the node's
// services.
func plan(state *proxy.State, g *globals, keys map[string]bool, alloc *allocator) (map[string]*servicePlan, error) {
	if keys == nil {
		out := make(map[string]*servicePlan, len(state.Services))
		for i := range state.Services {
			s := &state.Services[i]
			k := s.Name.Key()
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("%w: two service ports with key %s", ErrInvalidState, k)
			}
			p, err := planService(s, g, alloc)
			if err != nil {
				return nil, err
			}
			out[k] = p
		}
		return out, nil
	}
	out := make(map[string]*servicePlan, len(keys))
	for _, k := range sortedKeys(keys) {
		i, found := slices.BinarySearchFunc(state.Services, k, func(s proxy.ServicePort, k string) int {
			return strings.Compare(s.Name.Key(), k)
		})
		if !found {
			continue // gone from the state: its rules go
		}
		p, err := planService(&state.Services[i], g, alloc)
		if err != nil {
			return nil, err
		}
		out[k] = p
	}
	return out, nil
}

func (b *Backend) sync(ctx context.Context, state *proxy.State, changed map[string]bool) (map[string]*servicePlan, error) {
	g, err := newGlobals(state, Options{MasqueradeBit: b.cfg.MasqueradeBit, TCPBeLiberal: b.cfg.TCPBeLiberal})
	if err != nil {
		return nil, err
	}
	if changed == nil {
		b.alloc, b.refs = newAllocator(), map[string]int{}
	}
	planned, err := plan(state, g, changed, b.alloc)
	if err != nil {
		return nil, err
	}
	if b.conn == nil {
		c, err := gnft.New(gnft.WithNetNSFd(b.cfg.NetNS), gnft.WithSockOptions(bigBuffers), gnft.AsLasting())
		if err != nil {
			return nil, fmt.Errorf("nftables: opening netlink: %w", err)
		}
		b.conn = c
	}
	c := b.conn
	t, err := b.build(c, g, planned, changed)
	if err != nil {
		return nil, err
	}
	if len(t.ops) > 0 {
		klog.FromContext(ctx).V(4).Info("Partial nftables sync", "family", b.cfg.Family, "operations", t.ops)
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("nftables: committing the %s %s table: %w", g.f.name, TableName, err)
	}
	// The kernel has the rules: what the backend keeps of them is their
	// text, to tell whether a later sync changes them.
	for _, p := range planned {
		p.forgetExprs()
	}
	if changed == nil {
		return planned, nil
	}
	// The kernel holds the change: so does the backend's memory (changed
	// in place; a failure above forgets it all anyway).
	for k := range changed {
		if p, ok := planned[k]; ok {
			b.plans[k] = p
		} else {
			delete(b.plans, k)
		}
	}
	return b.plans, nil
}

// build queues the sync's transaction on c: all of the table for a full
// sync, what differs for the changed ports for a partial one (whose
// operations it also records, in ops, as text).
func (b *Backend) build(c *gnft.Conn, g *globals, planned map[string]*servicePlan, changed map[string]bool) (*txn, error) {
	t := &txn{c: c, f: g.f, table: &gnft.Table{Family: g.f.table, Name: TableName}, record: changed != nil}
	if changed == nil {
		b.count(planned, nil, 1)
		t.full(g.topLevel(), planned)
	} else {
		before, after := index(b.plans, changed), index(planned, changed)
		b.count(b.plans, changed, -1)
		b.count(planned, changed, 1)
		t.partial(before, after, b.refs, b.plans, planned, changed)
	}
	if t.err != nil {
		return nil, fmt.Errorf("nftables: building the transaction: %w", t.err)
	}
	return t, nil
}

// forgetExprs drops the expressions of the plan's rules, which a sync
// needs only to send them.
func (p *servicePlan) forgetExprs() {
	for i := range p.chains {
		for j := range p.chains[i].rules {
			p.chains[i].rules[j].exprs = nil
		}
	}
}

// count adds d to the reference count of every shared element of the
// given ports (nil: all) of plans: an element two ports share (an
// endpoint address in the hairpin set) goes only when neither has it.
func (b *Backend) count(plans map[string]*servicePlan, keys map[string]bool, d int) {
	for k, p := range plans {
		if keys != nil && !keys[k] {
			continue
		}
		for m, es := range p.elems {
			for _, e := range es {
				id := m + "\x00" + e.id()
				if b.refs[id] += d; b.refs[id] <= 0 {
					delete(b.refs, id)
				}
			}
		}
	}
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
	err   error
	// record asks for ops: the operations queued, as text.
	record bool
	ops    []string
}

func (t *txn) op(format string, args ...any) {
	if t.record {
		t.ops = append(t.ops, fmt.Sprintf(format, args...))
	}
}

func (t *txn) chain(name string) *gnft.Chain { return &gnft.Chain{Table: t.table, Name: name} }

func (t *txn) fail(err error) {
	if err != nil && t.err == nil {
		t.err = err
	}
}

func (t *txn) addRules(chain *gnft.Chain, rules []rule) {
	for _, r := range rules {
		t.op("add rule %s %s", chain.Name, r.text)
		t.c.AddRule(&gnft.Rule{Table: t.table, Chain: chain, Exprs: r.exprs})
	}
}

// set describes a shared map or set to the library.
func (t *txn) set(m sharedMap) *gnft.Set {
	s := &gnft.Set{Table: t.table, Name: m.name, IsMap: !m.set}
	if len(m.key) == 1 {
		s.KeyType = m.key[0]
	} else {
		s.KeyType, s.Concatenation = gnft.MustConcatSetType(m.key...), true
	}
	switch {
	case m.data != nil:
		s.DataType = *m.data
	case !m.set:
		s.DataType = gnft.TypeVerdict
	}
	return s
}

func (t *txn) elems(m sharedMap, es []elem, del bool) {
	if len(es) == 0 {
		return
	}
	out := make([]gnft.SetElement, len(es))
	verb := map[bool]string{false: "add", true: "delete"}[del]
	for i, e := range es {
		out[i] = gnft.SetElement{Key: padKey(e.key), Val: e.val, VerdictData: e.v}
		t.op("%s element %s { %s }", verb, m.name, e.text)
	}
	s := t.set(m)
	// A netlink attribute's length is 16 bits: a message's list of
	// elements must stay under 64 KiB.
	for chunk := range slices.Chunk(out, maxElemsPerMessage) {
		if del {
			t.fail(t.c.SetDeleteElements(s, chunk))
		} else {
			t.fail(t.c.SetAddElements(s, chunk))
		}
	}
}

// maxElemsPerMessage keeps an element list under 64 KiB: an element of
// the largest map (IPv6 address . protocol . port : verdict and chain
// name) takes under 200 bytes.
const maxElemsPerMessage = 256

// addOwn adds a service port's own set (affinity: client addresses that
// expire after the timeout) or verdict map (round robin) and its elements.
func (t *txn) addOwn(o ownSet) {
	t.op("add set %s", o.name)
	s := &gnft.Set{Table: t.table, Name: o.name, KeyType: t.f.addrType, HasTimeout: true, Timeout: o.timeout, Dynamic: true}
	if o.timeout == 0 {
		s = &gnft.Set{Table: t.table, Name: o.name, IsMap: true, KeyType: numgenType, DataType: gnft.TypeVerdict}
	}
	t.fail(t.c.AddSet(s, nil))
	t.elems(sharedMap{name: o.name, key: []gnft.SetDatatype{numgenType}}, o.elems, false)
}

// full replaces the whole table: delete it and build it again, in one
// transaction.
func (t *txn) full(top topLevel, plans map[string]*servicePlan) {
	t.c.AddTable(t.table)
	t.c.DelTable(t.table)
	t.c.AddTable(t.table)
	maps := t.f.sharedMaps()
	for _, m := range maps {
		t.fail(t.c.AddSet(t.set(m), nil))
	}
	for _, c := range top.chains {
		t.c.AddChain(t.chain(c.name))
	}
	for _, p := range plans {
		for _, c := range p.chains {
			t.c.AddChain(t.chain(c.name))
		}
		for _, o := range p.own {
			t.addOwn(o)
		}
	}
	for _, c := range top.chains {
		t.addRules(t.chain(c.name), c.rules)
	}
	// The elements in one message per map (shared elements, such as an
	// endpoint address that two services use, once).
	all := map[string][]elem{}
	// seen holds the index in all of each element's first holder.
	seen := make(map[string]int32, len(plans)*8)
	for _, k := range sortedKeys(plans) {
		p := plans[k]
		for _, c := range p.chains {
			t.addRules(t.chain(c.name), c.rules)
		}
		for m, es := range p.elems {
			for _, e := range es {
				id := m + "\x00" + e.id()
				if i, dup := seen[id]; !dup {
					seen[id] = int32(len(all[m]))
					all[m] = append(all[m], e)
				} else if !all[m][i].same(e) {
					t.fail(fmt.Errorf("%w: two service ports want %s in %s", ErrInvalidState, e.text, m))
				}
			}
		}
	}
	for _, m := range maps {
		t.elems(m, all[m.name], false)
	}
	for _, bc := range top.base {
		ch := t.c.AddChain(&gnft.Chain{Table: t.table, Name: bc.name, Type: bc.typ, Hooknum: bc.hook, Priority: bc.priority})
		t.addRules(ch, bc.rules)
	}
}

// partial rewrites what changed of the changed service ports: elements of
// the shared maps that differ, chains whose rules differ. A port whose
// endpoints were replaced but not counted differently changes elements of
// the endpoints map only.
func (t *txn) partial(before, after elemIndex, refs map[string]int, old, planned map[string]*servicePlan, changed map[string]bool) {
	oldChains, newChains, oldOwn, newOwn := objects(old, planned, changed)
	for _, n := range sortedKeys(newChains) {
		if _, ok := oldChains[n]; !ok {
			t.op("add chain %s", n)
			t.c.AddChain(t.chain(n))
		}
	}
	for _, n := range sortedKeys(newOwn) {
		if !oldOwn[n] {
			t.addOwn(newOwn[n])
		}
	}
	maps := t.f.sharedMaps()
	adds, dels := diffElems(maps, before, after, refs)
	for _, m := range maps {
		t.elems(m, dels[m.name], true)
	}
	for _, n := range sortedKeys(newChains) {
		c := newChains[n]
		if text, ok := oldChains[n]; ok {
			if text == c.text() {
				continue
			}
			t.op("flush chain %s", n)
			t.c.FlushChain(t.chain(n))
		}
		t.addRules(t.chain(n), c.rules)
	}
	for _, m := range maps {
		t.elems(m, adds[m.name], false)
	}
	// Old chains are emptied first, then the old sets and maps (which
	// rules of those chains used) go, then the chains (which elements of
	// those maps jumped to).
	for _, n := range sortedKeys(oldChains) {
		if _, ok := newChains[n]; !ok {
			t.op("flush chain %s", n)
			t.c.FlushChain(t.chain(n))
		}
	}
	for _, n := range sortedKeys(oldOwn) {
		if _, ok := newOwn[n]; !ok {
			t.op("delete set %s", n)
			t.c.DelSet(&gnft.Set{Table: t.table, Name: n})
		}
	}
	for _, n := range sortedKeys(oldChains) {
		if _, ok := newChains[n]; !ok {
			t.op("delete chain %s", n)
			t.c.DelChain(t.chain(n))
		}
	}
}

// objects lists the chains (with their rules as text) and own sets of the
// changed ports, before and after.
func objects(old, planned map[string]*servicePlan, changed map[string]bool) (oldChains map[string]string, newChains map[string]chainDef, oldOwn map[string]bool, newOwn map[string]ownSet) {
	oldChains, newChains = map[string]string{}, map[string]chainDef{}
	oldOwn, newOwn = map[string]bool{}, map[string]ownSet{}
	for k := range changed {
		if o := old[k]; o != nil {
			for _, c := range o.chains {
				oldChains[c.name] = c.text()
			}
			for _, a := range o.own {
				oldOwn[a.name] = true
			}
		}
		if p := planned[k]; p != nil {
			for _, c := range p.chains {
				newChains[c.name] = c
			}
			for _, a := range p.own {
				newOwn[a.name] = a
			}
		}
	}
	return oldChains, newChains, oldOwn, newOwn
}

// diffElems returns the shared-map elements to add and to delete, by map,
// in a stable order: an element goes when the changed ports no longer have
// it and no other port holds it (refs, already counted for after), and is
// replaced when its value changed.
func diffElems(maps []sharedMap, before, after elemIndex, refs map[string]int) (adds, dels map[string][]elem) {
	adds, dels = map[string][]elem{}, map[string][]elem{}
	for _, m := range maps {
		for id, e := range before[m.name] {
			n, ok := after[m.name][id]
			if (!ok && refs[m.name+"\x00"+id] == 0) || (ok && !n.same(e)) {
				dels[m.name] = append(dels[m.name], e)
			}
		}
		for id, e := range after[m.name] {
			if o, ok := before[m.name][id]; !ok || !o.same(e) {
				adds[m.name] = append(adds[m.name], e)
			}
		}
		for _, es := range [][]elem{dels[m.name], adds[m.name]} {
			slices.SortFunc(es, func(a, b elem) int { return strings.Compare(a.text, b.text) })
		}
	}
	return adds, dels
}

// elemIndex holds shared-map elements by map and element id.
type elemIndex map[string]map[string]elem

// index gathers the shared-map elements of the given ports of plans.
func index(plans map[string]*servicePlan, keys map[string]bool) elemIndex {
	out := elemIndex{}
	for k := range keys {
		p := plans[k]
		if p == nil {
			continue
		}
		for m, es := range p.elems {
			if out[m] == nil {
				out[m] = map[string]elem{}
			}
			for _, e := range es {
				out[m][e.id()] = e
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
