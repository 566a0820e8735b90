package ipvs

import (
	"maps"
	"net/netip"
	"slices"
	"time"
)

// programmed is one virtual service as berth believes the kernel holds it.
type programmed struct {
	// svc is the service as programmed.
	svc Service
	// owner is the Name.Key() of its service port.
	owner string
	// kind is what it stands for.
	kind Kind
	// dests are its destinations by address, the draining ones (weight 0,
	// not wanted) included.
	dests map[netip.AddrPort]Destination
}

// bound tells whether the service's address is on the dummy interface.
func (p *programmed) bound() bool { return p.kind != KindNodePort }

// table is berth's memory of the virtual services it programmed, with
// indexes by owner and by dummy address. It is updated right after each
// call that succeeds, so that it stays the best knowledge of the kernel
// even when a sync fails half-way.
type table struct {
	services map[ServiceKey]*programmed
	byOwner  map[string]map[ServiceKey]bool
	// addrRefs counts the services using each address on the dummy.
	addrRefs map[netip.Addr]int
}

func newTable() *table {
	return &table{services: map[ServiceKey]*programmed{}, byOwner: map[string]map[ServiceKey]bool{}, addrRefs: map[netip.Addr]int{}}
}

func (t *table) get(k ServiceKey) *programmed { return t.services[k] }

// put records p under its key, replacing what was there.
func (t *table) put(p *programmed) {
	k := p.svc.Key()
	t.del(k)
	t.services[k] = p
	if t.byOwner[p.owner] == nil {
		t.byOwner[p.owner] = map[ServiceKey]bool{}
	}
	t.byOwner[p.owner][k] = true
	if p.bound() {
		t.addrRefs[k.Addr]++
	}
}

// del forgets the service with the key.
func (t *table) del(k ServiceKey) {
	p := t.services[k]
	if p == nil {
		return
	}
	delete(t.services, k)
	if owned := t.byOwner[p.owner]; owned != nil {
		delete(owned, k)
		if len(owned) == 0 {
			delete(t.byOwner, p.owner)
		}
	}
	if p.bound() {
		if t.addrRefs[k.Addr]--; t.addrRefs[k.Addr] <= 0 {
			delete(t.addrRefs, k.Addr)
		}
	}
}

// owned returns the keys of the services of an owner, sorted.
func (t *table) owned(owner string) []ServiceKey {
	return sortedKeys(t.byOwner[owner])
}

// count returns the number of services and destinations.
func (t *table) count() int {
	n := len(t.services)
	for _, p := range t.services {
		n += len(p.dests)
	}
	return n
}

// sortedKeys returns the keys of a set of services in a stable order.
func sortedKeys[V any](m map[ServiceKey]V) []ServiceKey {
	return slices.SortedFunc(maps.Keys(m), compareKeys)
}

func compareKeys(a, b ServiceKey) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if a.Port != b.Port {
		return int(a.Port) - int(b.Port)
	}
	switch {
	case a.Protocol < b.Protocol:
		return -1
	case a.Protocol > b.Protocol:
		return 1
	}
	return 0
}

// drainKey identifies a destination being drained.
type drainKey struct {
	svc  ServiceKey
	dest netip.AddrPort
}

// drainItem is a destination that was removed from the State, kept at
// weight 0 until its connections end or its deadline passes.
type drainItem struct {
	svc      Service
	dest     Destination
	deadline time.Time
}

// sameService tells whether the kernel's service have is programmed as
// want: scheduler, flags (the kernel's hashed flag aside), timeout, netmask.
func sameService(have, want Service) bool {
	return have.Scheduler == want.Scheduler && have.Flags&^FlagHashed == want.Flags&^FlagHashed &&
		have.Timeout == want.Timeout && have.Netmask == want.Netmask
}

// sameDestination tells whether a destination has want's weight and
// forwarding method.
func sameDestination(have, want Destination) bool {
	return have.Weight == want.Weight && have.ConnectionFlags&ForwardMask == want.ConnectionFlags&ForwardMask
}
