package testing

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/berthnode/berth/netrules/link"
)

// Fake is a link.Routes that keeps a routing table in memory, with at most
// one route per destination like the kernel's main table as berth uses it.
// Routes of another owner (see Others) share that table. The zero value is
// not usable; use NewFake. It is safe for concurrent use.
type Fake struct {
	// mu guards the fields below.
	mu sync.Mutex
	// table maps a destination to its route.
	table map[netip.Prefix]entry
	// err, when set, is what every call of Fake's link.Routes methods returns.
	err error
}

type entry struct {
	// gateway is the route's next hop.
	gateway netip.Addr
	// berth tells berth's routes from another owner's.
	berth bool
}

var _ link.Routes = (*Fake)(nil)

// NewFake returns an empty table.
func NewFake() *Fake {
	return &Fake{table: map[netip.Prefix]entry{}}
}

// SetError makes every later List, Add and Delete fail with err, without
// changing the table, until SetError(nil).
func (f *Fake) SetError(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// List implements link.Routes; the routes come sorted by destination.
func (f *Fake) List() ([]link.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.list(true), nil
}

// Add implements link.Routes.
func (f *Fake) Add(r link.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if err := r.Validate(); err != nil {
		return err
	}
	if e, ok := f.table[r.Dst]; ok && !e.berth {
		return fmt.Errorf("adding %s: %w", r, link.ErrForeignRoute)
	}
	f.table[r.Dst] = entry{gateway: r.Gateway, berth: true}
	return nil
}

// Delete implements link.Routes.
func (f *Fake) Delete(r link.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if err := r.ValidateDelete(); err != nil {
		return err
	}
	e, ok := f.table[r.Dst]
	if ok && e.berth && (!r.Gateway.IsValid() || r.Gateway == e.gateway) {
		delete(f.table, r.Dst)
	}
	return nil
}

// Others returns the view of the same table that another owner of routes
// has (as `ip route add ... proto static` would).
func (f *Fake) Others() Others {
	return fakeOthers{f: f}
}

// list returns the routes of berth (berth true) or of the other owner,
// sorted by destination. f.mu must be held.
func (f *Fake) list(berth bool) []link.Route {
	routes := []link.Route{}
	for dst, e := range f.table {
		if e.berth == berth {
			routes = append(routes, link.Route{Dst: dst, Gateway: e.gateway})
		}
	}
	slices.SortFunc(routes, CompareRoutes)
	return routes
}

// fakeOthers is Fake's table as another owner of routes sees it.
type fakeOthers struct{ f *Fake }

func (o fakeOthers) Add(r link.Route) error {
	o.f.mu.Lock()
	defer o.f.mu.Unlock()
	if err := r.Validate(); err != nil {
		return err
	}
	// Like `ip route replace`: another owner may take over any destination.
	o.f.table[r.Dst] = entry{gateway: r.Gateway}
	return nil
}

func (o fakeOthers) List() ([]link.Route, error) {
	o.f.mu.Lock()
	defer o.f.mu.Unlock()
	return o.f.list(false), nil
}

// CompareRoutes orders routes by destination, then gateway; it suits
// slices.SortFunc and cmpopts.SortSlices.
func CompareRoutes(a, b link.Route) int {
	if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Dst.Bits(), b.Dst.Bits()); c != 0 {
		return c
	}
	return a.Gateway.Compare(b.Gateway)
}
