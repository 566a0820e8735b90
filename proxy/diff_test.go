package proxy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func udp53(svc, ip string, eps ...Endpoint) ServicePort {
	return ServicePort{Name: spn(svc, "dns", UDP), Protocol: UDP, ClusterIPs: addrs(ip), Port: 53, ClusterEndpoints: eps}
}

func TestChangedServices(t *testing.T) {
	a := tcp80("a", "10.96.0.1", ep("10.0.0.1", 80, false))
	b := tcp80("b", "10.96.0.2")
	c := tcp80("c", "10.96.0.3")
	b2 := tcp80("b", "10.96.0.2", ep("10.0.0.2", 80, false))
	tests := []struct {
		name       string
		prev, next []ServicePort
		want       map[string]bool
	}{
		{name: "same", prev: []ServicePort{a, b}, next: []ServicePort{a, b}, want: map[string]bool{}},
		{name: "added", prev: []ServicePort{a}, next: []ServicePort{a, b, c}, want: map[string]bool{b.Name.Key(): true, c.Name.Key(): true}},
		{name: "removed", prev: []ServicePort{a, b, c}, next: []ServicePort{b}, want: map[string]bool{a.Name.Key(): true, c.Name.Key(): true}},
		{name: "changed", prev: []ServicePort{a, b, c}, next: []ServicePort{a, b2, c}, want: map[string]bool{b.Name.Key(): true}},
		{name: "all new", prev: nil, next: []ServicePort{a}, want: map[string]bool{a.Name.Key(): true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := changedServices(&State{Services: tt.prev}, &State{Services: tt.next})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSameGlobals(t *testing.T) {
	base := State{Family: IPv4, ClusterCIDRs: prefixes("10.244.0.0/16"), Services: []ServicePort{tcp80("a", "10.96.0.1")}}
	other := base
	other.Services = nil
	if !sameGlobals(&base, &other) {
		t.Error("services must not count as globals")
	}
	other.MasqueradeAll = true
	if sameGlobals(&base, &other) {
		t.Error("masqueradeAll change not seen")
	}
}

func TestFindStaleUDP(t *testing.T) {
	e1, e2 := ep("10.0.0.1", 5353, false), ep("10.0.0.2", 5353, false)
	withExt := func(sp ServicePort, ip string, eps ...Endpoint) ServicePort {
		sp.ExternalIPs = addrs(ip)
		sp.ExternalEndpoints = eps
		return sp
	}
	tests := []struct {
		name       string
		prev, next *State
		want       staleUDP
	}{{
		name: "first sync: every UDP address with endpoints",
		next: &State{Services: []ServicePort{udp53("dns", "10.96.0.10", e1), udp53("empty", "10.96.0.11"), tcp80("web", "10.96.0.12", e1)}},
		want: staleUDP{serviceIPs: addrs("10.96.0.10")},
	}, {
		name: "gained its first endpoint",
		prev: &State{Services: []ServicePort{udp53("dns", "10.96.0.10")}},
		next: &State{Services: []ServicePort{udp53("dns", "10.96.0.10", e1)}},
		want: staleUDP{serviceIPs: addrs("10.96.0.10")},
	}, {
		name: "endpoint went away: cleared on every address of the port",
		prev: &State{Services: []ServicePort{withExt(udp53("dns", "10.96.0.10", e1, e2), "198.51.100.1", e1, e2)}},
		next: &State{Services: []ServicePort{withExt(udp53("dns", "10.96.0.10", e1), "198.51.100.1", e1)}},
		want: staleUDP{endpoints: []staleEndpoint{
			{serviceIP: addr("10.96.0.10"), port: 53, endpointIP: addr("10.0.0.2")},
			{serviceIP: addr("198.51.100.1"), port: 53, endpointIP: addr("10.0.0.2")},
		}},
	}, {
		name: "service removed: its address is cleared whole",
		prev: &State{Services: []ServicePort{udp53("dns", "10.96.0.10", e1)}},
		next: &State{},
		want: staleUDP{serviceIPs: addrs("10.96.0.10")},
	}, {
		name: "TCP is left alone",
		prev: &State{Services: []ServicePort{tcp80("web", "10.96.0.12", e1, e2)}},
		next: &State{},
		want: staleUDP{},
	}, {
		name: "nothing changed",
		prev: &State{Services: []ServicePort{udp53("dns", "10.96.0.10", e1)}},
		next: &State{Services: []ServicePort{udp53("dns", "10.96.0.10", e1)}},
		want: staleUDP{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := findStaleUDP(tt.prev, tt.next)
			if diff := cmp.Diff(tt.want, got, append(cmpOpts, cmp.AllowUnexported(staleUDP{}, staleEndpoint{}))...); diff != "" {
				t.Fatalf("stale (-want +got):\n%s", diff)
			}
		})
	}
}
