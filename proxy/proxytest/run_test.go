package proxytest

import (
	"net/netip"
	"testing"

	"github.com/berthnode/berth/proxy"
)

// TestCheck: the checks of one connection and of the spread catch what a
// wrong backend would do.
func TestCheck(t *testing.T) {
	f := proxy.IPv4
	a, b, c := netip.AddrPortFrom(PodIP(f, 1, 2), 80), netip.AddrPortFrom(PodIP(f, 2, 2), 80), netip.AddrPortFrom(PodIP(f, 3, 2), 80)
	rr := Want{Verdict: Accepted, Endpoints: []netip.AddrPort{a, b, c}, Spread: RoundRobin}
	pkt := Packet{Src: PodIP(f, 1, 2)}
	for _, tc := range []struct {
		name string
		want Want
		got  Outcome
		ok   bool
	}{
		{"fits", rr, Outcome{Verdict: Accepted, Endpoint: b}, true},
		{"wrong verdict", rr, Outcome{Verdict: Rejected}, false},
		{"other endpoint", rr, Outcome{Verdict: Accepted, Endpoint: netip.AddrPortFrom(PodIP(f, 1, 2), 81)}, false},
		{"masqueraded, not wanted", rr, Outcome{Verdict: Accepted, Endpoint: b, Masquerade: true}, false},
		{"redirected, not wanted", Want{Verdict: Accepted}, Outcome{Verdict: Accepted, Endpoint: b}, false},
		{"hairpin lands on itself unmasqueraded", Want{Verdict: Accepted, Endpoints: rr.Endpoints, Hairpin: true}, Outcome{Verdict: Accepted, Endpoint: a}, false},
		{"hairpin lands elsewhere unmasqueraded", Want{Verdict: Accepted, Endpoints: rr.Endpoints, Hairpin: true}, Outcome{Verdict: Accepted, Endpoint: b}, true},
		{"dropped as wanted, whatever else", Want{Verdict: Dropped}, Outcome{Verdict: Dropped, Endpoint: b}, true},
	} {
		if msg := check(tc.want, pkt, tc.got); (msg == "") != tc.ok {
			t.Errorf("%s: check = %q, want ok %v", tc.name, msg, tc.ok)
		}
	}
	sticky := Want{Verdict: Accepted, Endpoints: []netip.AddrPort{a, b}, Spread: Sticky}
	stickyPkts := Connections(Case{Packet: pkt, Want: sticky})
	if len(stickyPkts) != 6 || stickyPkts[0].Src != stickyPkts[1].Src || stickyPkts[1].Src == stickyPkts[2].Src {
		t.Errorf("Sticky connections: %+v, want two from each of 3 clients", stickyPkts)
	}
	for _, tc := range []struct {
		name string
		want Want
		got  []netip.AddrPort
		ok   bool
	}{
		{"in turn", rr, []netip.AddrPort{b, c, a, b, c, a}, true},
		{"same twice", rr, []netip.AddrPort{a, a, b, a, a, b}, false},
		{"not in turn", rr, []netip.AddrPort{a, b, c, b, a, c}, false},
		{"sticky", sticky, []netip.AddrPort{a, a, b, b, a, a}, true},
		{"client moves", sticky, []netip.AddrPort{a, b, b, b, a, a}, false},
		{"clients not spread", sticky, []netip.AddrPort{a, a, a, a, b, b}, false},
	} {
		if msg := checkSpread(tc.want, stickyPkts, tc.got); (msg == "") != tc.ok {
			t.Errorf("%s: checkSpread = %q, want ok %v", tc.name, msg, tc.ok)
		}
	}
}

// TestCaseNames: Except refers to cases by name, so names are unique.
func TestCaseNames(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Cases(proxy.IPv4) {
		if seen[c.Name] {
			t.Errorf("two cases named %q", c.Name)
		}
		seen[c.Name] = true
	}
}
