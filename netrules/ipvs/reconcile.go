package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"k8s.io/klog/v2"

	"github.com/berthnode/berth/proxy"
)

// reconcile makes the kernel's virtual service cur (nil when the kernel
// has none with that key) what want asks for, and records the result.
// With trust, destinations that memory says are already want's are not
// read back (a partial sync); without, they always are (a full sync).
func (b *Backend) reconcile(ctx context.Context, want *VirtualServer, cur *Service, trust bool) error {
	h := b.cfg.Handle
	logger := klog.FromContext(ctx)
	k := want.Service.Key()
	p := &programmed{svc: want.Service, owner: want.Owner, kind: want.Kind, dests: map[netip.AddrPort]Destination{}}
	if cur == nil {
		if err := h.NewService(want.Service); err != nil {
			return err
		}
		logger.V(3).Info("Added a virtual service", "service", want.Owner, "virtualServer", k, "scheduler", want.Service.Scheduler)
		b.mem.put(p)
		b.forgetDrains(k)
		b.evaluated[k] = true
		for _, d := range want.Destinations {
			if err := h.NewDestination(want.Service, d); err != nil {
				return err
			}
			p.dests[d.AddrPort()] = d
		}
		return nil
	}
	if !sameService(*cur, want.Service) {
		if err := h.UpdateService(want.Service); err != nil {
			return err
		}
		logger.V(3).Info("Updated a virtual service", "service", want.Owner, "virtualServer", k, "scheduler", want.Service.Scheduler)
	}
	if old := b.mem.get(k); trust && old != nil && old.owner == want.Owner && sameDests(old.dests, want.Destinations, b.drainsOf(k)) {
		p.dests = old.dests
		b.mem.put(p)
		return nil
	}
	return b.reconcileRead(ctx, want, p)
}

// reconcileRead reads the kernel's destinations of the service and brings
// them to want's, draining the ones no longer wanted.
func (b *Backend) reconcileRead(ctx context.Context, want *VirtualServer, p *programmed) error {
	h := b.cfg.Handle
	b.mem.put(p)
	b.evaluated[want.Service.Key()] = true
	have, err := h.GetDestinations(want.Service)
	if err != nil {
		return err
	}
	haveBy := make(map[netip.AddrPort]Destination, len(have))
	for _, d := range have {
		haveBy[d.AddrPort()] = d
	}
	k := want.Service.Key()
	for _, d := range want.Destinations {
		ap := d.AddrPort()
		cur, ok := haveBy[ap]
		delete(haveBy, ap)
		delete(b.drains, drainKey{svc: k, dest: ap})
		switch {
		case !ok:
			if err := h.NewDestination(want.Service, d); err != nil {
				return err
			}
		case !sameDestination(cur, d):
			if err := h.UpdateDestination(want.Service, d); err != nil {
				return err
			}
		}
		p.dests[ap] = d
	}
	for _, ap := range sortedAddrPorts(haveBy) {
		kept, err := b.retire(ctx, want.Service, haveBy[ap])
		if err != nil {
			return err
		}
		if kept {
			d := haveBy[ap]
			d.Weight = 0
			p.dests[ap] = d
		}
	}
	return nil
}

// retire drains a destination that is no longer wanted: UDP ones and
// those without connections are deleted at once, the others get weight 0
// and are deleted once their connections are gone or their grace period
// is over. It tells whether the destination is kept.
func (b *Backend) retire(ctx context.Context, s Service, d Destination) (bool, error) {
	h := b.cfg.Handle
	now := b.cfg.Clock.Now()
	key := drainKey{svc: s.Key(), dest: d.AddrPort()}
	item := b.drains[key]
	if item == nil {
		item = &drainItem{svc: s, dest: d, deadline: now.Add(b.cfg.GracePeriod)}
	}
	item.svc, item.dest.ActiveConnections, item.dest.InactiveConnections = s, d.ActiveConnections, d.InactiveConnections
	if done, why := b.drained(item, now); done {
		if err := h.DelDestination(s, d); err != nil && !errors.Is(err, ErrNotFound) {
			return true, err
		}
		delete(b.drains, key)
		klog.FromContext(ctx).V(3).Info("Deleted a destination", "destination", describe(s, d), "why", why)
		return false, nil
	}
	if d.Weight != 0 {
		zero := d
		zero.Weight = 0
		if err := h.UpdateDestination(s, zero); err != nil {
			return true, err
		}
		klog.FromContext(ctx).V(3).Info("Draining a destination", "destination", describe(s, d),
			"connections", d.ActiveConnections+d.InactiveConnections, "deadline", item.deadline)
	}
	b.drains[key] = item
	return true, nil
}

// drained tells whether a draining destination may go, and why.
func (b *Backend) drained(item *drainItem, now time.Time) (bool, string) {
	switch {
	case item.svc.Protocol == proxy.UDP:
		// As kube-proxy: no draining for UDP, expire_nodest_conn ends
		// its flows on their next packet.
		return true, "UDP"
	case item.dest.ActiveConnections+item.dest.InactiveConnections == 0:
		return true, "no connections left"
	case !now.Before(item.deadline):
		return true, fmt.Sprintf("grace period of %s over with %d connections left",
			b.cfg.GracePeriod, item.dest.ActiveConnections+item.dest.InactiveConnections)
	}
	return false, ""
}

// deleteService deletes a virtual service berth owns, and forgets it and
// its draining destinations.
func (b *Backend) deleteService(ctx context.Context, s Service) error {
	if err := b.cfg.Handle.DelService(s); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	klog.FromContext(ctx).V(3).Info("Deleted a virtual service", "virtualServer", s.Key())
	b.mem.del(s.Key())
	b.forgetDrains(s.Key())
	b.evaluated[s.Key()] = true
	return nil
}

// checkDrains reads the draining destinations of the services not in
// skip and deletes those whose connections are gone or whose grace
// period is over.
func (b *Backend) checkDrains(ctx context.Context, skip map[ServiceKey]bool) error {
	bySvc := map[ServiceKey][]*drainItem{}
	for k, item := range b.drains {
		if !skip[k.svc] {
			bySvc[k.svc] = append(bySvc[k.svc], item)
		}
	}
	for _, k := range sortedKeys(bySvc) {
		items := bySvc[k]
		dests, err := b.cfg.Handle.GetDestinations(items[0].svc)
		if errors.Is(err, ErrNotFound) {
			b.forgetDrains(k)
			continue
		}
		if err != nil {
			return err
		}
		for _, item := range items {
			i := slices.IndexFunc(dests, func(d Destination) bool { return d.AddrPort() == item.dest.AddrPort() })
			if i < 0 {
				delete(b.drains, drainKey{svc: k, dest: item.dest.AddrPort()})
				continue
			}
			kept, err := b.retire(ctx, item.svc, dests[i])
			if err != nil {
				return err
			}
			if p := b.mem.get(k); p != nil && !kept {
				delete(p.dests, item.dest.AddrPort())
			}
		}
	}
	return nil
}

func (b *Backend) forgetDrains(k ServiceKey) {
	for dk := range b.drains {
		if dk.svc == k {
			delete(b.drains, dk)
		}
	}
}

// drainsOf returns the draining destinations of a service.
func (b *Backend) drainsOf(k ServiceKey) map[netip.AddrPort]bool {
	var out map[netip.AddrPort]bool
	for dk := range b.drains {
		if dk.svc == k {
			if out == nil {
				out = map[netip.AddrPort]bool{}
			}
			out[dk.dest] = true
		}
	}
	return out
}

// sameDests tells whether the remembered destinations are want's, the
// draining ones aside.
func sameDests(have map[netip.AddrPort]Destination, want []Destination, draining map[netip.AddrPort]bool) bool {
	if len(have) != len(want)+len(draining) {
		return false
	}
	for _, d := range want {
		cur, ok := have[d.AddrPort()]
		if !ok || draining[d.AddrPort()] || !sameDestination(cur, d) {
			return false
		}
	}
	return true
}

func sortedAddrPorts(m map[netip.AddrPort]Destination) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(m))
	for ap := range m {
		out = append(out, ap)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// Run checks the draining destinations every CheckInterval until ctx ends,
// deleting those whose connections are gone or whose grace period is
// over. It returns nil when ctx ends.
func (b *Backend) Run(ctx context.Context) error {
	t := b.cfg.Clock.NewTicker(b.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			if err := b.CheckDrains(ctx); err != nil {
				klog.FromContext(ctx).Error(err, "Checking draining IPVS destinations failed; the next sync is full", "family", b.cfg.Family)
			}
		}
	}
}

// CheckDrains checks the draining destinations once, as Run does on each
// tick. After a failure the memory of the destinations may be wrong: the
// next partial Sync is refused with proxy.ErrFullSyncRequired, and the
// proxier syncs in full.
func (b *Backend) CheckDrains(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ready || len(b.drains) == 0 {
		return nil
	}
	if err := b.checkDrains(ctx, nil); err != nil {
		b.synced = false
		return err
	}
	return nil
}

// Draining returns the destinations being drained, as "service ->
// destination", sorted.
func (b *Backend) Draining() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.drains))
	for _, item := range b.drains {
		out = append(out, describe(item.svc, item.dest))
	}
	slices.Sort(out)
	return out
}
