package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

// Backend programs proxy states into the kernel's IPVS table, the dummy
// interface and the iptables rules IPVS mode needs. It implements
// proxy.Backend; Run drains removed destinations between syncs.
type Backend struct {
	cfg Config

	// mu serializes syncs and the drain checks of Run.
	mu sync.Mutex
	// ready tells that the kernel was set up and the handles opened.
	ready bool
	// synced tells that the memory below describes the kernel: the last
	// sync succeeded and no check of the draining destinations failed
	// since. A partial sync is refused without it.
	synced bool
	// nodeAddrs are the node-port addresses found by the last full sync.
	nodeAddrs []netip.Addr
	// mem is what berth believes it holds in IPVS.
	mem *table
	// bound are the addresses on the dummy interface, as of the last sync.
	bound map[netip.Addr]bool
	// drains are the destinations being drained.
	drains map[drainKey]*drainItem
	// evaluated are the virtual services whose destinations this sync
	// read (or made, or deleted): their draining ones were just checked.
	evaluated map[ServiceKey]bool
	// rules applies the iptables part.
	rules *ruleApplier
}

var _ proxy.Backend = (*Backend)(nil)

// New returns a Backend. It touches nothing: the first Sync, which must be a
// full one, checks the kernel, sets the kernel parameters and opens the
// handles.
func New(cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid IPVS backend config: %w", err)
	}
	cfg = cfg.withDefaults()
	return &Backend{
		cfg:       cfg,
		mem:       newTable(),
		bound:     map[netip.Addr]bool{},
		drains:    map[drainKey]*drainItem{},
		evaluated: map[ServiceKey]bool{},
		rules: &ruleApplier{
			tables:  &xtables.Applier{Family: cfg.Family, Backend: "IPVS", Exec: cfg.Exec, Hooks: cfg.Hooks},
			applied: map[xtables.Table][]byte{},
		},
	}, nil
}

// Sync implements proxy.Backend. A full sync reads the kernel's IPVS table
// and the dummy interface and changes only what differs from state; a
// partial one trusts its memory for the service ports not in changed and
// touches only those in it; it is refused with proxy.ErrFullSyncRequired
// before the first successful sync, after a failed one and after a failed
// check of the draining destinations (CheckDrains). SyncResult.Rules counts
// the virtual services, their destinations and the iptables rules; Bytes,
// the iptables-restore input sent.
func (b *Backend) Sync(ctx context.Context, state *proxy.State, changed map[string]bool) (proxy.SyncResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := b.cfg.Clock.Now()
	if state == nil {
		return proxy.SyncResult{}, fmt.Errorf("%w: nil state", ErrInvalidState)
	}
	if state.Family != b.cfg.Family {
		return proxy.SyncResult{}, fmt.Errorf("%w: an IPv%d state for the IPv%d backend", ErrInvalidState, state.Family, b.cfg.Family)
	}
	full := changed == nil
	if !full && !b.synced {
		return proxy.SyncResult{}, fmt.Errorf("IPVS: a partial sync without a successful one (or after a failed drain check): %w", proxy.ErrFullSyncRequired)
	}
	if err := b.setup(ctx); err != nil {
		return proxy.SyncResult{}, err
	}
	b.evaluated = map[ServiceKey]bool{}
	var res proxy.SyncResult
	var err error
	if full {
		res, err = b.syncFull(ctx, state)
	} else {
		res, err = b.syncPartial(ctx, state, changed)
	}
	if err != nil {
		b.synced = false
		b.rules.forget()
		return res, err
	}
	b.synced = true
	klog.FromContext(ctx).V(2).Info("Synced IPVS", "family", b.cfg.Family, "full", res.Full, "services", len(state.Services),
		"rules", res.Rules, "draining", len(b.drains), "took", b.cfg.Clock.Since(start))
	return res, nil
}

// setup checks the kernel, sets its parameters and opens the handles,
// once.
func (b *Backend) setup(ctx context.Context) error {
	if b.ready {
		return nil
	}
	if err := setupKernel(ctx, b.cfg.ProcRoot, b.cfg.StrictARP); err != nil {
		return err
	}
	if b.cfg.Handle == nil {
		h, err := NewHandle()
		if err != nil {
			return err
		}
		b.cfg.Handle = h
	}
	if b.cfg.Links == nil {
		l, err := NewLinks()
		if err != nil {
			return err
		}
		b.cfg.Links = l
	}
	if b.cfg.Timeouts != (Timeouts{}) {
		if err := b.cfg.Handle.SetTimeouts(b.cfg.Timeouts); err != nil {
			return err
		}
		klog.FromContext(ctx).Info("Set the IPVS timeouts", "tcp", b.cfg.Timeouts.TCP, "tcpFin", b.cfg.Timeouts.TCPFin, "udp", b.cfg.Timeouts.UDP)
	}
	b.ready = true
	return nil
}

// syncFull reconciles every virtual service, the dummy interface and the
// iptables rules with state. A virtual service that fails does not stop
// the others: the failures are returned together at the end.
func (b *Backend) syncFull(ctx context.Context, state *proxy.State) (proxy.SyncResult, error) {
	want, have, owned, err := b.readKernel(ctx, state)
	if err != nil {
		return proxy.SyncResult{}, err
	}
	var errs []error
	wanted := make(map[ServiceKey]bool, len(want))
	for i := range want {
		k := want[i].Service.Key()
		wanted[k] = true
		var cur *Service
		if s, ok := have[k]; ok {
			cur = &s
		}
		if err := b.reconcile(ctx, &want[i], cur, false); err != nil {
			errs = append(errs, b.failed(ctx, want[i].Owner, err))
		}
	}
	for _, k := range sortedKeys(owned) {
		if wanted[k] {
			continue
		}
		if err := b.deleteService(ctx, owned[k]); err != nil {
			errs = append(errs, b.failed(ctx, "", err))
			wanted[k] = true // still there: remember it
		}
	}
	for k := range b.mem.services {
		if !wanted[k] {
			b.mem.del(k)
		}
	}
	for k := range b.drains {
		if !wanted[k.svc] {
			delete(b.drains, k)
		}
	}
	if err := b.syncBound(ctx, want); err != nil {
		errs = append(errs, err)
	}
	res, err := b.applyRules(ctx, state, true)
	return res, errors.Join(append(errs, err)...)
}

// readKernel reads what a full sync starts from: the node's addresses, the
// dummy interface's, the plan of state, the kernel's virtual services of
// the family (have) and those of them berth owns.
func (b *Backend) readKernel(ctx context.Context, state *proxy.State) ([]VirtualServer, map[ServiceKey]Service, map[ServiceKey]Service, error) {
	l := b.cfg.Links
	if err := l.EnsureDummy(DummyInterface); err != nil {
		return nil, nil, nil, err
	}
	local, err := l.LocalAddrs(b.cfg.Family)
	if err != nil {
		return nil, nil, nil, err
	}
	bound, err := b.readBound()
	if err != nil {
		return nil, nil, nil, err
	}
	b.nodeAddrs = NodePortAddresses(state, local)
	want, notes, err := Plan(state, PlanOptions{Scheduler: b.cfg.Scheduler, NodePortAddrs: b.nodeAddrs})
	if err != nil {
		return nil, nil, nil, err
	}
	for _, n := range notes {
		klog.FromContext(ctx).Info("Virtual service left to its first owner", "family", b.cfg.Family, "conflict", n)
	}
	kernel, err := b.cfg.Handle.GetServices()
	if err != nil {
		return nil, nil, nil, err
	}
	have, owned := map[ServiceKey]Service{}, map[ServiceKey]Service{}
	for _, s := range kernel {
		if s.FWMark != 0 || !s.Addr.IsValid() || proxy.Of(s.Addr) != b.cfg.Family {
			continue
		}
		have[s.Key()] = s
		// Ownership is decided before anything changes the dummy
		// interface or the memory.
		if b.owns(s, bound) {
			owned[s.Key()] = s
		}
	}
	return want, have, owned, nil
}

// failed logs the failure of one virtual service's programming and
// returns it; the sync goes on with the others.
func (b *Backend) failed(ctx context.Context, owner string, err error) error {
	klog.FromContext(ctx).Error(err, "Programming IPVS failed; the next sync is full", "family", b.cfg.Family, "service", owner)
	return err
}

// readBound reads the addresses of the dummy interface.
func (b *Backend) readBound() (map[netip.Addr]bool, error) {
	addrs, err := b.cfg.Links.Addrs(DummyInterface, b.cfg.Family)
	if err != nil {
		return nil, err
	}
	b.bound = make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		b.bound[a] = true
	}
	return b.bound, nil
}

// owns tells whether a virtual service of the kernel is berth's; see the
// package documentation for the rule.
func (b *Backend) owns(s Service, bound map[netip.Addr]bool) bool {
	if slices.ContainsFunc(b.cfg.ExcludeCIDRs, func(p netip.Prefix) bool { return p.Contains(s.Addr) }) {
		return false
	}
	switch {
	case bound[s.Addr]:
		return true
	case b.cfg.NodePortRange.Contains(s.Port) && slices.Contains(b.nodeAddrs, s.Addr):
		return true
	}
	return b.mem.get(s.Key()) != nil
}

// syncBound puts the virtual addresses of want on the dummy interface and
// removes the others from it.
func (b *Backend) syncBound(ctx context.Context, want []VirtualServer) error {
	wantAddrs := map[netip.Addr]bool{}
	for i := range want {
		if want[i].Bound() {
			wantAddrs[want[i].Service.Addr] = true
		}
	}
	for _, a := range sortedAddrs(wantAddrs) {
		if err := b.bind(ctx, a); err != nil {
			return err
		}
	}
	for _, a := range sortedAddrs(b.bound) {
		if !wantAddrs[a] {
			if err := b.unbind(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *Backend) bind(ctx context.Context, a netip.Addr) error {
	if b.bound[a] {
		return nil
	}
	if err := b.cfg.Links.AddAddr(DummyInterface, a); err != nil {
		return err
	}
	klog.FromContext(ctx).V(4).Info("Bound a service address", "interface", DummyInterface, "address", a)
	b.bound[a] = true
	return nil
}

func (b *Backend) unbind(ctx context.Context, a netip.Addr) error {
	if !b.bound[a] {
		return nil
	}
	if err := b.cfg.Links.DelAddr(DummyInterface, a); err != nil {
		return err
	}
	klog.FromContext(ctx).V(4).Info("Unbound a service address", "interface", DummyInterface, "address", a)
	delete(b.bound, a)
	return nil
}

func sortedAddrs(m map[netip.Addr]bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// syncPartial reprograms the virtual services of the changed service
// ports only, trusting memory for the rest; a service port that fails does
// not stop the others.
func (b *Backend) syncPartial(ctx context.Context, state *proxy.State, changed map[string]bool) (proxy.SyncResult, error) {
	keys := make([]string, 0, len(changed))
	for k := range changed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, key := range keys {
		if err := b.syncServicePort(ctx, state, key); err != nil {
			errs = append(errs, b.failed(ctx, key, err))
		}
	}
	if err := b.checkDrains(ctx, b.evaluated); err != nil {
		errs = append(errs, err)
	}
	res, err := b.applyRules(ctx, state, false)
	return res, errors.Join(append(errs, err)...)
}

// syncServicePort reprograms one service port's virtual services.
func (b *Backend) syncServicePort(ctx context.Context, state *proxy.State, key string) error {
	var want []VirtualServer
	i := sort.Search(len(state.Services), func(i int) bool { return state.Services[i].Name.Key() >= key })
	if i < len(state.Services) && state.Services[i].Name.Key() == key {
		vss, err := planService(&state.Services[i], b.cfg.Family, PlanOptions{Scheduler: b.cfg.Scheduler, NodePortAddrs: b.nodeAddrs})
		if err != nil {
			return err
		}
		want = vss
	}
	var errs []error
	wanted := map[ServiceKey]bool{}
	for j := range want {
		k := want[j].Service.Key()
		p := b.mem.get(k)
		if p != nil && p.owner != key {
			klog.FromContext(ctx).Info("Virtual service left to its first owner", "family", b.cfg.Family,
				"conflict", fmt.Sprintf("%s of %s is already %s's", k, key, p.owner))
			continue
		}
		wanted[k] = true
		var cur *Service
		if p != nil {
			cur = &p.svc
		}
		if err := b.reconcile(ctx, &want[j], cur, true); err != nil {
			errs = append(errs, err)
		}
		if want[j].Bound() {
			if err := b.bind(ctx, k.Addr); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, k := range b.mem.owned(key) {
		if wanted[k] {
			continue
		}
		p := b.mem.get(k)
		if err := b.deleteService(ctx, p.svc); err != nil {
			errs = append(errs, err)
			continue
		}
		if p.bound() && b.mem.addrRefs[k.Addr] == 0 {
			if err := b.unbind(ctx, k.Addr); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// applyRules renders and applies the iptables rules.
func (b *Backend) applyRules(ctx context.Context, state *proxy.State, full bool) (proxy.SyncResult, error) {
	rules, err := RenderRules(state, RuleOptions{MasqueradeBit: b.cfg.MasqueradeBit, NodePortAddrs: b.nodeAddrs})
	if err != nil {
		return proxy.SyncResult{}, fmt.Errorf("rendering the iptables rules of IPVS mode: %w", err)
	}
	sent, err := b.rules.apply(ctx, rules, full)
	if err != nil {
		return proxy.SyncResult{}, err
	}
	return proxy.SyncResult{Full: full, Rules: b.mem.count() + rules.Count, Bytes: sent}, nil
}

// describe names a destination of a service for logs: "TCP 10.96.0.10:80 -> 10.244.1.2:8080".
func describe(s Service, d Destination) string {
	return strings.Join([]string{s.String(), "->", d.String()}, " ")
}
