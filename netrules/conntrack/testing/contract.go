package testing

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthnode/berth/proxy"
)

// Subject is one conntrack table under the contract suite.
type Subject struct {
	// Conntrack is the implementation under test.
	Conntrack proxy.Conntrack
	// AddUDP makes a UDP flow from a client port of the subject's own to
	// service, DNATed to endpoint, and returns it.
	AddUDP func(t *testing.T, service, endpoint netip.AddrPort) Flow
	// Flows lists the UDP flows the table tracks.
	Flows func(t *testing.T) []Flow
}

// Addresses the suite uses: services in 10.96.0.0/16 (fd00:96::/64),
// endpoints in 10.0.0.0/24 (fd00:10::/64); the subject must route them.
func svc(f proxy.Family, n int) netip.Addr {
	return addr(f, fmt.Sprintf("10.96.0.%d", n), fmt.Sprintf("fd00:96::%d", n))
}

// Endpoint is the suite's endpoint address n, 10.0.0.n (fd00:10::n).
func Endpoint(f proxy.Family, n int) netip.Addr {
	return addr(f, fmt.Sprintf("10.0.0.%d", n), fmt.Sprintf("fd00:10::%d", n))
}

func addr(f proxy.Family, v4, v6 string) netip.Addr {
	if f == proxy.IPv6 {
		return netip.MustParseAddr(v6)
	}
	return netip.MustParseAddr(v4)
}

// RunContract runs the suite for each family against fresh subjects.
func RunContract(t *testing.T, newSubject func(t *testing.T, f proxy.Family) Subject) {
	for _, f := range []proxy.Family{proxy.IPv4, proxy.IPv6} {
		t.Run(fmt.Sprintf("IPv%d", f), func(t *testing.T) {
			t.Run("service IP", func(t *testing.T) { testServiceIP(t, f, newSubject(t, f)) })
			t.Run("endpoint", func(t *testing.T) { testEndpoint(t, f, newSubject(t, f)) })
		})
	}
}

// setup makes flows to two service addresses, two ports of the first,
// each to two endpoints.
func setup(t *testing.T, f proxy.Family, s Subject) []Flow {
	var all []Flow
	for _, dst := range []netip.AddrPort{
		netip.AddrPortFrom(svc(f, 10), 53), netip.AddrPortFrom(svc(f, 10), 54), netip.AddrPortFrom(svc(f, 11), 53),
	} {
		for _, ep := range []int{1, 2} {
			all = append(all, s.AddUDP(t, dst, netip.AddrPortFrom(Endpoint(f, ep), 5353)))
		}
	}
	check(t, s, all)
	return all
}

func check(t *testing.T, s Subject, want []Flow) {
	t.Helper()
	less := func(a, b Flow) bool { return a.Client.Compare(b.Client) < 0 }
	if diff := cmp.Diff(want, s.Flows(t), cmpopts.SortSlices(less), cmpopts.EquateEmpty(),
		cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("flows (-want +got):\n%s", diff)
	}
}

func keep(all []Flow, drop func(Flow) bool) []Flow {
	return slices.DeleteFunc(slices.Clone(all), drop)
}

func testServiceIP(t *testing.T, f proxy.Family, s Subject) {
	all := setup(t, f, s)
	if err := s.Conntrack.ClearUDPForServiceIP(svc(f, 10)); err != nil {
		t.Fatalf("ClearUDPForServiceIP: %v", err)
	}
	check(t, s, keep(all, func(fl Flow) bool { return fl.Service.Addr() == svc(f, 10) }))
	if err := s.Conntrack.ClearUDPForServiceIP(svc(f, 99)); err != nil {
		t.Errorf("ClearUDPForServiceIP of an address without flows: %v", err)
	}
}

func testEndpoint(t *testing.T, f proxy.Family, s Subject) {
	all := setup(t, f, s)
	if err := s.Conntrack.ClearUDPForEndpoint(svc(f, 10), 53, Endpoint(f, 1)); err != nil {
		t.Fatalf("ClearUDPForEndpoint: %v", err)
	}
	left := keep(all, func(fl Flow) bool {
		return fl.Service == netip.AddrPortFrom(svc(f, 10), 53) && fl.Endpoint.Addr() == Endpoint(f, 1)
	})
	check(t, s, left)
	// A node port: any destination address, that port.
	if err := s.Conntrack.ClearUDPForEndpoint(netip.Addr{}, 53, Endpoint(f, 2)); err != nil {
		t.Fatalf("ClearUDPForEndpoint without service IP: %v", err)
	}
	check(t, s, keep(left, func(fl Flow) bool { return fl.Service.Port() == 53 && fl.Endpoint.Addr() == Endpoint(f, 2) }))
}
