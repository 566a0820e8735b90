package proxytest

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/berthnode/berth/proxy"
)

// Tracer is one backend on one fresh node, as the table sees it. Run asks
// a new one per case, so that no case inherits a round robin's position or
// an affinity from another.
type Tracer interface {
	// Sync programs the state, as the proxier's first (full) sync would.
	Sync(s *proxy.State) error
	// Trace sends p, the first packet of a new connection, and tells what
	// happened to it. An error means the tracer could not follow the
	// packet (a rule it does not model, a kernel that did not answer);
	// it fails the case.
	Trace(p Packet) (Outcome, error)
}

// NewTracer returns a Tracer for the family on a node of its own; it may
// register cleanups with t, and skip or fail it.
type NewTracer func(t *testing.T, f proxy.Family) Tracer

// Except names the cases a backend cannot pass, each with the reason
// (what the backend does instead, and why).
type Except map[string]string

// Run plays the table, in both families, against the tracers newTracer
// returns: one subtest "IPvN/case name" per case. The cases except names
// are logged with their reason and not played; a name the table does not have fails the
// test.
func Run(t *testing.T, newTracer NewTracer, except Except) {
	t.Helper()
	run(t, []proxy.Family{proxy.IPv4, proxy.IPv6}, newTracer, except)
}

// run plays the table in the families.
func run(t *testing.T, families []proxy.Family, newTracer NewTracer, except Except) {
	t.Helper()
	checkExcept(t, except)
	for _, f := range families {
		t.Run(fmt.Sprintf("IPv%d", f), func(t *testing.T) {
			for _, c := range Cases(f) {
				// A case the backend cannot pass is named with its reason
				// in the log, not run: its outcome is the backend's by
				// design (or the test's means cannot send it).
				if reason, ok := except[c.Name]; ok {
					t.Logf("not played, as the backend's test says: %q: %s", c.Name, reason)
					continue
				}
				t.Run(c.Name, func(t *testing.T) {
					RunCase(t, newTracer(t, f), f, c)
				})
			}
		})
	}
}

// checkExcept fails t for names the table does not have.
func checkExcept(t *testing.T, except Except) {
	t.Helper()
	names := map[string]bool{}
	for _, c := range Cases(proxy.IPv4) {
		names[c.Name] = true
	}
	for name := range except {
		if !names[name] {
			t.Errorf("Except names %q, which is no case of the table", name)
		}
	}
}

// RunCase syncs the case's state into tr and checks the outcome of the
// case's connections; the backend's own tests may call it for a case of
// their own.
func RunCase(t *testing.T, tr Tracer, f proxy.Family, c Case) {
	t.Helper()
	s := ExampleState(f)
	if c.State != nil {
		c.State(s)
	}
	if err := tr.Sync(s); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	pkts := Connections(c)
	got := make([]netip.AddrPort, len(pkts))
	for i, p := range pkts {
		o, err := tr.Trace(p)
		if err != nil {
			t.Fatalf("Trace(%s): %v", describe(p), err)
		}
		if msg := check(c.Want, p, o); msg != "" {
			t.Fatalf("connection %d, %s: %s\ntrail:\n%s", i+1, describe(p), msg, trail(o))
		}
		got[i] = o.Endpoint
	}
	if msg := checkSpread(c.Want, pkts, got); msg != "" {
		t.Errorf("%s", msg)
	}
}

// Connections are the packets a case sends, one per new connection: the
// case's own, and for RoundRobin 2k in all (k endpoints), each from
// another source port; for Sticky, two from each of k+1 clients (the
// case's source, then the addresses after it).
func Connections(c Case) []Packet {
	k := len(c.Want.Endpoints)
	var out []Packet
	switch c.Want.Spread {
	case RoundRobin:
		for i := range 2 * k {
			p := c.Packet
			p.SPort += uint16(i)
			out = append(out, p)
		}
	case Sticky:
		src := c.Packet.Src
		for i := range k + 1 {
			for j := range 2 {
				p := c.Packet
				p.Src, p.SPort = src, p.SPort+uint16(2*i+j)
				out = append(out, p)
			}
			src = src.Next()
		}
	default:
		out = append(out, c.Packet)
	}
	return out
}

// check compares one connection's outcome with the case's; "" when it
// fits.
func check(w Want, p Packet, o Outcome) string {
	if o.Verdict != w.Verdict {
		return fmt.Sprintf("%s, want %s", o.Verdict, w.Verdict)
	}
	if w.Verdict != Accepted {
		return ""
	}
	if len(w.Endpoints) == 0 {
		if o.Endpoint.IsValid() {
			return fmt.Sprintf("sent to %s, want its destination left alone", o.Endpoint)
		}
	} else if !slices.Contains(w.Endpoints, o.Endpoint) {
		return fmt.Sprintf("sent to %v, want one of %v", o.Endpoint, w.Endpoints)
	}
	masq := w.Masquerade || (w.Hairpin && o.Endpoint.Addr() == p.Src)
	if o.Masquerade != masq {
		return fmt.Sprintf("masquerade %v at %s, want %v", o.Masquerade, o.Endpoint, masq)
	}
	return ""
}

// checkSpread checks where the connections went, as the case's Spread
// asks; "" when they fit.
func checkSpread(w Want, pkts []Packet, got []netip.AddrPort) string {
	k := len(w.Endpoints)
	switch w.Spread {
	case RoundRobin:
		if !distinct(got[:k]) {
			return fmt.Sprintf("the first %d connections went to %v, want each endpoint once", k, got[:k])
		}
		for i := k; i < len(got); i++ {
			if got[i] != got[i-k] {
				return fmt.Sprintf("connections went to %v, want the endpoints in turn", got)
			}
		}
	case Sticky:
		var firsts []netip.AddrPort
		for i := 0; i < len(got); i += 2 {
			if got[i] != got[i+1] {
				return fmt.Sprintf("client %s went to %s, then to %s; want it to keep its endpoint", pkts[i].Src, got[i], got[i+1])
			}
			firsts = append(firsts, got[i])
		}
		if !distinct(firsts[:k]) {
			return fmt.Sprintf("the first %d clients went to %v, want each endpoint once", k, firsts[:k])
		}
	}
	return ""
}

func distinct(eps []netip.AddrPort) bool {
	seen := map[netip.AddrPort]bool{}
	for _, e := range eps {
		if seen[e] {
			return false
		}
		seen[e] = true
	}
	return true
}

func describe(p Packet) string {
	s := fmt.Sprintf("%s %s -> %s", p.Proto, netip.AddrPortFrom(p.Src, p.SPort), netip.AddrPortFrom(p.Dst, p.DPort))
	if p.FromLocal {
		s += " (from the node)"
	}
	return s
}

func trail(o Outcome) string {
	if len(o.Trail) == 0 {
		return "  (none)\n"
	}
	return "  " + strings.Join(o.Trail, "\n  ") + "\n"
}
