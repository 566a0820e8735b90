package testing

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthnode/berth/netrules/ipvs"
	"github.com/berthnode/berth/proxy"
)

// Fake is an ipvs.Handle that keeps an IPVS table in memory, with the
// kernel's rules: a service is created once, a destination belongs to an
// existing service, the kernel's hashed flag is reported set, unknown
// schedulers are refused. Tests set connection counters, make calls fail,
// read the calls made, and schedule connections (Connect) with the rr
// scheduler's semantics. It is safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	services map[ipvs.ServiceKey]*fakeService
	calls    []string
	fail     map[string]error
	timeouts ipvs.Timeouts
}

// fakeService is a virtual service, its destinations in the order they
// were added (the kernel's list order) and its scheduling state.
type fakeService struct {
	svc   ipvs.Service
	dests []ipvs.Destination
	// last is the index of the destination rr picked last (-1: none).
	last int
	// sticky maps a client to its destination (persistence).
	sticky map[netip.Addr]netip.AddrPort
}

var _ ipvs.Handle = (*Fake)(nil)

// NewFake returns an empty IPVS table.
func NewFake() *Fake {
	return &Fake{services: map[ipvs.ServiceKey]*fakeService{}, fail: map[string]error{}}
}

// Fail makes the next call of the method (its name: "NewDestination")
// fail with err, changing nothing.
func (f *Fake) Fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = err
}

// Calls returns the calls made since the last ResetCalls, as "Method
// service [destination]".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Writes returns the calls that change the table.
func (f *Fake) Writes() []string {
	var out []string
	for _, c := range f.Calls() {
		if !strings.HasPrefix(c, "Get") {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the calls made so far.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// call records a call and returns the failure set for it, if any.
func (f *Fake) call(method string, what ...string) error {
	f.calls = append(f.calls, strings.Join(append([]string{method}, what...), " "))
	if err := f.fail[method]; err != nil {
		delete(f.fail, method)
		return err
	}
	return nil
}

func notFound(what string) error {
	return fmt.Errorf("%s: %w: %w", what, ipvs.ErrNotFound, syscall.ESRCH)
}

// GetServices implements ipvs.Handle.
func (f *Fake) GetServices() ([]ipvs.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("GetServices"); err != nil {
		return nil, err
	}
	out := make([]ipvs.Service, 0, len(f.services))
	for _, s := range f.services {
		out = append(out, s.svc)
	}
	slices.SortFunc(out, func(a, b ipvs.Service) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// GetDestinations implements ipvs.Handle.
func (f *Fake) GetDestinations(s ipvs.Service) ([]ipvs.Destination, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("GetDestinations", s.String()); err != nil {
		return nil, err
	}
	fs := f.services[s.Key()]
	if fs == nil {
		return nil, notFound(s.String())
	}
	return slices.Clone(fs.dests), nil
}

// NewService implements ipvs.Handle.
func (f *Fake) NewService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("NewService", s.String()); err != nil {
		return err
	}
	if err := checkService(s); err != nil {
		return err
	}
	if f.services[s.Key()] != nil {
		return fmt.Errorf("adding %s: %w", s, syscall.EEXIST)
	}
	s.Flags |= ipvs.FlagHashed
	f.services[s.Key()] = &fakeService{svc: s, last: -1, sticky: map[netip.Addr]netip.AddrPort{}}
	return nil
}

// checkService refuses what the kernel refuses.
func checkService(s ipvs.Service) error {
	switch {
	case !s.Addr.IsValid() || s.Port == 0:
		return fmt.Errorf("service %s: %w", s, syscall.EINVAL)
	case s.Protocol != proxy.TCP && s.Protocol != proxy.UDP && s.Protocol != proxy.SCTP:
		return fmt.Errorf("service %s: protocol: %w", s, syscall.EINVAL)
	case !slices.Contains(ipvs.Schedulers, s.Scheduler):
		return fmt.Errorf("service %s: scheduler %q: %w", s, s.Scheduler, syscall.ENOENT)
	}
	return nil
}

// UpdateService implements ipvs.Handle.
func (f *Fake) UpdateService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("UpdateService", s.String()); err != nil {
		return err
	}
	fs := f.services[s.Key()]
	if fs == nil {
		return notFound(s.String())
	}
	if err := checkService(s); err != nil {
		return err
	}
	fs.svc.Scheduler, fs.svc.Flags, fs.svc.Timeout, fs.svc.Netmask = s.Scheduler, s.Flags|ipvs.FlagHashed, s.Timeout, s.Netmask
	return nil
}

// DelService implements ipvs.Handle.
func (f *Fake) DelService(s ipvs.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DelService", s.String()); err != nil {
		return err
	}
	if f.services[s.Key()] == nil {
		return notFound(s.String())
	}
	delete(f.services, s.Key())
	return nil
}

// dest finds a destination of an existing service.
func (f *Fake) dest(s ipvs.Service, d ipvs.Destination) (*fakeService, int, error) {
	fs := f.services[s.Key()]
	if fs == nil {
		return nil, -1, notFound(s.String())
	}
	return fs, slices.IndexFunc(fs.dests, func(x ipvs.Destination) bool { return x.AddrPort() == d.AddrPort() }), nil
}

// NewDestination implements ipvs.Handle.
func (f *Fake) NewDestination(s ipvs.Service, d ipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("NewDestination", s.String(), d.String()); err != nil {
		return err
	}
	fs, i, err := f.dest(s, d)
	switch {
	case err != nil:
		return err
	case i >= 0:
		return fmt.Errorf("adding %s to %s: %w", d, s, syscall.EEXIST)
	case !d.Addr.IsValid() || d.Addr.Is4() != s.Addr.Is4() || d.Port == 0 || d.Weight < 0:
		return fmt.Errorf("adding %s to %s: %w", d, s, syscall.EINVAL)
	}
	d.ActiveConnections, d.InactiveConnections = 0, 0
	fs.dests = append(fs.dests, d)
	return nil
}

// UpdateDestination implements ipvs.Handle.
func (f *Fake) UpdateDestination(s ipvs.Service, d ipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("UpdateDestination", s.String(), d.String(), fmt.Sprintf("weight=%d", d.Weight)); err != nil {
		return err
	}
	fs, i, err := f.dest(s, d)
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("updating %s of %s: %w: %w", d, s, ipvs.ErrNotFound, syscall.ENOENT)
	}
	fs.dests[i].Weight, fs.dests[i].ConnectionFlags = d.Weight, d.ConnectionFlags
	return nil
}

// DelDestination implements ipvs.Handle.
func (f *Fake) DelDestination(s ipvs.Service, d ipvs.Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("DelDestination", s.String(), d.String()); err != nil {
		return err
	}
	fs, i, err := f.dest(s, d)
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("deleting %s of %s: %w: %w", d, s, ipvs.ErrNotFound, syscall.ENOENT)
	}
	fs.dests = slices.Delete(fs.dests, i, i+1)
	if fs.last >= i {
		fs.last--
	}
	return nil
}

// SetConnections sets a destination's connection counters, as traffic
// would; false when there is no such destination.
func (f *Fake) SetConnections(k ipvs.ServiceKey, dest netip.AddrPort, active, inactive int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := f.services[k]
	if fs == nil {
		return false
	}
	for i := range fs.dests {
		if fs.dests[i].AddrPort() == dest {
			fs.dests[i].ActiveConnections, fs.dests[i].InactiveConnections = active, inactive
			return true
		}
	}
	return false
}

// Connect schedules a new connection from client to the virtual service
// as the kernel's rr scheduler does: the next destination of non-zero
// weight after the one picked last, in list order; with persistence, the
// client's previous destination while it still has weight. It counts the
// connection as active and returns the destination, or false when no
// destination takes new connections (the kernel answers ICMP port
// unreachable). Other schedulers are modelled as rr.
func (f *Fake) Connect(k ipvs.ServiceKey, client netip.Addr) (netip.AddrPort, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := f.services[k]
	if fs == nil {
		return netip.AddrPort{}, false
	}
	if fs.svc.Flags&ipvs.FlagPersistent != 0 {
		if ap, ok := fs.sticky[client]; ok {
			if i := slices.IndexFunc(fs.dests, func(d ipvs.Destination) bool { return d.AddrPort() == ap }); i >= 0 && fs.dests[i].Weight > 0 {
				fs.dests[i].ActiveConnections++
				return ap, true
			}
		}
	}
	n := len(fs.dests)
	for step := 1; step <= n; step++ {
		i := (fs.last + step) % n
		if fs.dests[i].Weight > 0 {
			fs.last = i
			fs.dests[i].ActiveConnections++
			fs.sticky[client] = fs.dests[i].AddrPort()
			return fs.dests[i].AddrPort(), true
		}
	}
	return netip.AddrPort{}, false
}

// VirtualServer is a virtual service of the fake and its destinations, for
// comparisons.
type VirtualServer struct {
	// Service is the service as the kernel reports it.
	Service ipvs.Service
	// Destinations are its destinations, in list order.
	Destinations []ipvs.Destination
}

// Dump returns the table, sorted by service.
func (f *Fake) Dump() []VirtualServer {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]VirtualServer, 0, len(f.services))
	for _, fs := range f.services {
		out = append(out, VirtualServer{Service: fs.svc, Destinations: slices.Clone(fs.dests)})
	}
	slices.SortFunc(out, func(a, b VirtualServer) int { return strings.Compare(a.Service.String(), b.Service.String()) })
	return out
}

// Service returns the virtual service with the key and its destinations.
func (f *Fake) Service(k ipvs.ServiceKey) (VirtualServer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := f.services[k]
	if fs == nil {
		return VirtualServer{}, false
	}
	return VirtualServer{Service: fs.svc, Destinations: slices.Clone(fs.dests)}, true
}

// errInjected is the default failure of tests that do not care which.
var errInjected = errors.New("injected failure")

// ErrInjected returns an error for Fail that says it was injected.
func ErrInjected() error { return errInjected }

// SetTimeouts implements ipvs.Handle: it keeps the non-zero timeouts.
func (f *Fake) SetTimeouts(t ipvs.Timeouts) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("SetTimeouts", fmt.Sprintf("%v/%v/%v", t.TCP, t.TCPFin, t.UDP)); err != nil {
		return err
	}
	for _, p := range []struct {
		dst *time.Duration
		v   time.Duration
	}{{&f.timeouts.TCP, t.TCP}, {&f.timeouts.TCPFin, t.TCPFin}, {&f.timeouts.UDP, t.UDP}} {
		if p.v != 0 {
			*p.dst = p.v
		}
	}
	return nil
}

// Timeouts returns the session timeouts set (zero: the kernel's).
func (f *Fake) Timeouts() ipvs.Timeouts {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.timeouts
}
