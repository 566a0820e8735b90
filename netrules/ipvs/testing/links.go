package testing

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/berthnode/berth/netrules/ipvs"
	"github.com/berthnode/berth/proxy"
)

// FakeLinks is an ipvs.Links that keeps the node's interfaces and their
// addresses in memory. It records the calls that change them and can make
// the next call of a method fail. It is safe for concurrent use.
type FakeLinks struct {
	mu    sync.Mutex
	links map[string]*fakeLink
	order []string
	calls []string
	fail  map[string]error
}

type fakeLink struct {
	dummy, loopback bool
	addrs           []netip.Addr
}

var _ ipvs.Links = (*FakeLinks)(nil)

// NewFakeLinks returns a node with a loopback interface "lo" (127.0.0.1,
// ::1) and the given interfaces and addresses, none of them a dummy.
func NewFakeLinks(ifaces map[string][]netip.Addr) *FakeLinks {
	f := &FakeLinks{links: map[string]*fakeLink{}, fail: map[string]error{}}
	f.add("lo", &fakeLink{loopback: true, addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}})
	names := make([]string, 0, len(ifaces))
	for n := range ifaces {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f.add(n, &fakeLink{addrs: slices.Clone(ifaces[n])})
	}
	return f
}

func (f *FakeLinks) add(name string, l *fakeLink) {
	f.links[name] = l
	f.order = append(f.order, name)
}

// Fail makes the next call of the method fail with err.
func (f *FakeLinks) Fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = err
}

// Calls returns the changing calls made so far ("AddAddr berth-ipvs0
// 10.96.0.10", "EnsureDummy berth-ipvs0" when it created the interface).
func (f *FakeLinks) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// ResetCalls forgets the calls made so far.
func (f *FakeLinks) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

func (f *FakeLinks) failure(method string) error {
	if err := f.fail[method]; err != nil {
		delete(f.fail, method)
		return err
	}
	return nil
}

// AddLink adds an interface, as another program would; dummy tells its
// kind.
func (f *FakeLinks) AddLink(name string, dummy bool, addrs ...netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.add(name, &fakeLink{dummy: dummy, addrs: slices.Clone(addrs)})
}

// SetAddrs replaces the addresses of an interface, as DHCP would.
func (f *FakeLinks) SetAddrs(name string, addrs ...netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.links[name]; l != nil {
		l.addrs = slices.Clone(addrs)
	}
}

// LinkAddrs returns every address of an interface, sorted; nil when it
// does not exist.
func (f *FakeLinks) LinkAddrs(name string) []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.links[name]
	if l == nil {
		return nil
	}
	out := slices.Clone(l.addrs)
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// EnsureDummy implements ipvs.Links.
func (f *FakeLinks) EnsureDummy(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("EnsureDummy"); err != nil {
		return err
	}
	if l := f.links[name]; l != nil {
		if !l.dummy {
			return fmt.Errorf("interface %s exists and is not a dummy", name)
		}
		return nil
	}
	f.calls = append(f.calls, "EnsureDummy "+name)
	f.add(name, &fakeLink{dummy: true})
	return nil
}

// Addrs implements ipvs.Links.
func (f *FakeLinks) Addrs(name string, fam proxy.Family) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("Addrs"); err != nil {
		return nil, err
	}
	l := f.links[name]
	if l == nil {
		return nil, fmt.Errorf("%w: %s", ipvs.ErrNoSuchLink, name)
	}
	var out []netip.Addr
	for _, a := range l.addrs {
		if proxy.Of(a) == fam {
			out = append(out, a)
		}
	}
	return out, nil
}

// AddAddr implements ipvs.Links.
func (f *FakeLinks) AddAddr(name string, a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("AddAddr"); err != nil {
		return err
	}
	l := f.links[name]
	if l == nil {
		return fmt.Errorf("%w: %s", ipvs.ErrNoSuchLink, name)
	}
	f.calls = append(f.calls, strings.Join([]string{"AddAddr", name, a.String()}, " "))
	if !slices.Contains(l.addrs, a) {
		l.addrs = append(l.addrs, a)
	}
	return nil
}

// DelAddr implements ipvs.Links.
func (f *FakeLinks) DelAddr(name string, a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("DelAddr"); err != nil {
		return err
	}
	l := f.links[name]
	if l == nil {
		return fmt.Errorf("%w: %s", ipvs.ErrNoSuchLink, name)
	}
	f.calls = append(f.calls, strings.Join([]string{"DelAddr", name, a.String()}, " "))
	l.addrs = slices.DeleteFunc(l.addrs, func(x netip.Addr) bool { return x == a })
	return nil
}

// LocalAddrs implements ipvs.Links.
func (f *FakeLinks) LocalAddrs(fam proxy.Family) ([]ipvs.LocalAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure("LocalAddrs"); err != nil {
		return nil, err
	}
	var out []ipvs.LocalAddr
	for _, name := range f.order {
		l := f.links[name]
		for _, a := range l.addrs {
			if proxy.Of(a) == fam {
				out = append(out, ipvs.LocalAddr{Addr: a, Link: name, Loopback: l.loopback})
			}
		}
	}
	return out, nil
}
