package testing

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/berthnode/berth/proxy"
)

// Flow is a tracked UDP flow: to Service, NATed to Endpoint.
type Flow struct {
	// Client is the flow's source.
	Client netip.AddrPort
	// Service is the original destination.
	Service netip.AddrPort
	// Endpoint is where the flow was DNATed (the reply's source).
	Endpoint netip.AddrPort
}

// Fake is a conntrack table of UDP flows. It implements proxy.Conntrack.
type Fake struct {
	mu    sync.Mutex
	flows []Flow
}

var _ proxy.Conntrack = (*Fake)(nil)

// Add tracks a flow.
func (f *Fake) Add(fl Flow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flows = append(f.flows, fl)
}

// Flows lists the tracked flows.
func (f *Fake) Flows() []Flow {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.flows)
}

// ClearUDPForServiceIP implements proxy.Conntrack.
func (f *Fake) ClearUDPForServiceIP(ip netip.Addr) error {
	f.remove(func(fl Flow) bool { return fl.Service.Addr() == ip })
	return nil
}

// ClearUDPForEndpoint implements proxy.Conntrack, with conntrack.Cleaner's
// wildcards: an invalid svcIP or a zero port matches any.
func (f *Fake) ClearUDPForEndpoint(svcIP netip.Addr, port uint16, endpointIP netip.Addr) error {
	f.remove(func(fl Flow) bool {
		return fl.Endpoint.Addr() == endpointIP &&
			(!svcIP.IsValid() || fl.Service.Addr() == svcIP) &&
			(port == 0 || fl.Service.Port() == port)
	})
	return nil
}

func (f *Fake) remove(match func(Flow) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flows = slices.DeleteFunc(f.flows, match)
}
