package testing

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// Packet is a packet to trace through the fake's rules.
type Packet struct {
	// Src and Dst are the packet's addresses; Dst's family picks the
	// ruleset.
	Src, Dst netip.Addr
	// Proto is the transport protocol.
	Proto proxy.Protocol
	// SPort and DPort are the transport ports.
	SPort, DPort uint16
	// New tells that the packet starts a connection: only such packets
	// go through the nat table (conntrack replays the NAT of the first
	// packet on the others), and conntrack calls them NEW.
	New bool
	// FromLocal tells that a process of the node sends the packet (nat
	// and filter OUTPUT) rather than that it arrives from a pod or another
	// host (nat PREROUTING, then filter INPUT or FORWARD).
	FromLocal bool
}

// Verdict is the fate of a traced packet.
type Verdict string

// The verdicts.
const (
	Accept Verdict = "ACCEPT"
	Drop   Verdict = "DROP"
	Reject Verdict = "REJECT"
)

// Result is what happened to a traced packet.
type Result struct {
	// Verdict is whether the packet went on.
	Verdict Verdict
	// DNAT is where the packet was sent; zero when its destination was
	// not rewritten.
	DNAT netip.AddrPort
	// Masquerade tells that the packet leaves with the node's address as
	// its source.
	Masquerade bool
	// Matched lists the rules the packet matched, in order, as
	// "table CHAIN: rule".
	Matched []string
	// Err is set when the rules did something the tracer cannot follow.
	Err error
}

// packetState is a packet while it goes through the rules.
type packetState struct {
	fake         *Fake
	src, dst     netip.Addr
	proto        string
	sport, dport uint16
	mark         uint32
	ctstate      string
}

// Trace walks a packet through the rules as netfilter would: nat
// PREROUTING (or OUTPUT for FromLocal) for a new connection, routing (to
// INPUT if the destination is local, else FORWARD), filter, and nat
// POSTROUTING for what leaves the node. Statistic counters and recent lists
// change as they would in the kernel.
func (f *Fake) Trace(pkt Packet) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	family := familyOf(pkt.Dst)
	rs := f.sets[family]
	st := &packetState{
		fake: f, src: pkt.Src, dst: pkt.Dst, proto: strings.ToLower(string(pkt.Proto)),
		sport: pkt.SPort, dport: pkt.DPort, ctstate: "ESTABLISHED",
	}
	if pkt.New {
		st.ctstate = "NEW"
	}
	res := Result{Verdict: Accept}
	w := &walker{st: st, res: &res}
	in, out := "PREROUTING", "FORWARD"
	if pkt.FromLocal {
		in, out = "OUTPUT", "OUTPUT"
	}
	if pkt.New {
		if v := w.run(rs.tables["nat"], in); v != Accept {
			return w.finish(v)
		}
	}
	if !pkt.FromLocal && f.isLocal(st.dst) {
		out = "INPUT"
	}
	if v := w.run(rs.tables["filter"], out); v != Accept {
		return w.finish(v)
	}
	if pkt.New && out != "INPUT" {
		return w.finish(w.run(rs.tables["nat"], "POSTROUTING"))
	}
	return w.finish(Accept)
}

// walker follows one packet.
type walker struct {
	st  *packetState
	res *Result
}

func (w *walker) finish(v Verdict) Result {
	w.res.Verdict = v
	if w.res.Err != nil {
		w.res.Verdict = Drop
	}
	return *w.res
}

// run goes through a built-in chain and applies its policy if nothing
// decided.
func (w *walker) run(t *table, name string) Verdict {
	v, _ := w.walk(t, name, 0)
	if v == "" {
		return Verdict(t.chains[name].policy)
	}
	return v
}

// walk goes through a chain; it returns the verdict that ends the table
// ("" when the chain ran out or returned).
func (w *walker) walk(t *table, name string, depth int) (Verdict, bool) {
	if depth > 64 {
		w.res.Err = fmt.Errorf("%w: jumps nested more than 64 deep at %s", errNotModelled, name)
		return Drop, true
	}
	ch := t.chains[name]
	if ch == nil {
		w.res.Err = fmt.Errorf("%w: no chain %s in %s", errNotModelled, name, t.name)
		return Drop, true
	}
	for _, r := range ch.rules {
		if !r.matches(w.st) {
			continue
		}
		w.res.Matched = append(w.res.Matched, t.name+" "+name+": "+r.Text)
		a := r.action
		switch a.kind {
		case "":
		case "ACCEPT", "DROP", "REJECT":
			return Verdict(a.kind), true
		case "RETURN":
			return "", false
		case "MARK":
			w.st.mark = (w.st.mark &^ a.mask) ^ a.value
		case "DNAT":
			w.st.dst = a.to.Addr()
			if a.to.Port() != 0 {
				w.st.dport = a.to.Port()
			}
			w.res.DNAT = netip.AddrPortFrom(w.st.dst, w.st.dport)
			return Accept, true
		case "MASQUERADE":
			w.res.Masquerade = true
			return Accept, true
		case "JUMP":
			if v, done := w.walk(t, a.jump, depth+1); done {
				return v, true
			}
		}
	}
	return "", false
}

// matches evaluates the rule's matches in order, stopping at the first
// that fails: like the kernel, a statistic match further on does not count
// a packet an earlier match turned away.
func (r *parsedRule) matches(st *packetState) bool {
	for _, m := range r.matchers {
		if !m(st) {
			return false
		}
	}
	return true
}

// FirstPacket is the fake's packet for proxytest's first packet of a new
// connection.
func FirstPacket(p proxytest.Packet) Packet {
	return Packet{Src: p.Src, Dst: p.Dst, Proto: p.Proto, SPort: p.SPort, DPort: p.DPort, New: true, FromLocal: p.FromLocal}
}

// verdicts are the fake's verdicts in proxytest's words.
var verdicts = map[Verdict]proxytest.Verdict{Accept: proxytest.Accepted, Drop: proxytest.Dropped, Reject: proxytest.Rejected}

// Outcome is the result in proxytest's words, the rules matched as its
// trail; the error is Err.
func (r Result) Outcome() (proxytest.Outcome, error) {
	return proxytest.Outcome{Verdict: verdicts[r.Verdict], Endpoint: r.DNAT, Masquerade: r.Masquerade, Trail: r.Matched}, r.Err
}
