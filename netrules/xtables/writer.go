package xtables

import "bytes"

// Writer accumulates the iptables-restore input of one table: chain
// declarations first (each flushes the chain under --noflush), then rules,
// then deletions, then COMMIT.
type Writer struct {
	table   Table
	chains  bytes.Buffer
	rules   bytes.Buffer
	deletes bytes.Buffer
	// nRules counts the -A lines.
	nRules int
	// CountOnly makes Add count the rules without writing them: for an
	// input streamed later, whose rules are written again as it goes.
	CountOnly bool
}

// NewWriter returns an empty Writer for table.
func NewWriter(t Table) *Writer {
	return &Writer{table: t}
}

// Reset empties the writer.
func (w *Writer) Reset() {
	w.chains.Reset()
	w.rules.Reset()
	w.deletes.Reset()
	w.nRules = 0
}

// Empty tells whether nothing was written.
func (w *Writer) Empty() bool {
	return w.chains.Len() == 0 && w.rules.Len() == 0 && w.deletes.Len() == 0
}

// Rules is the number of rules added.
func (w *Writer) Rules() int { return w.nRules }

// RuleBytes returns the rules written so far, one "-A" line each; it is
// valid until the next write.
func (w *Writer) RuleBytes() []byte { return w.rules.Bytes() }

// Size is the number of bytes written so far, COMMIT and the table line
// aside.
func (w *Writer) Size() int { return w.chains.Len() + w.rules.Len() + w.deletes.Len() }

// Grow makes room for rules more bytes of rules and chains more of chain
// declarations: a full payload's buffers grown by doubling would allocate
// several times the payload.
func (w *Writer) Grow(rules, chains int) {
	w.rules.Grow(rules)
	w.chains.Grow(chains)
}

// Declare writes the chain's declaration: it creates the chain, or flushes
// it if it exists.
func (w *Writer) Declare(chain string) {
	w.chains.WriteByte(':')
	w.chains.WriteString(chain)
	w.chains.WriteString(" - [0:0]\n")
}

// Add appends a rule to chain. args must already be in the order
// iptables-save prints them in (-s, -d, -p, then matches, then -j), so that
// what berth writes and what the kernel reports compare equal.
func (w *Writer) Add(chain string, args ...string) {
	if w.CountOnly {
		w.nRules++
		return
	}
	w.rules.WriteString("-A ")
	w.rules.WriteString(chain)
	for _, a := range args {
		w.rules.WriteByte(' ')
		w.rules.WriteString(a)
	}
	w.rules.WriteByte('\n')
	w.nRules++
}

// AddRendered appends n rules rendered before (by Add, into another
// Writer's RuleBytes).
func (w *Writer) AddRendered(rules []byte, n int) {
	w.rules.Write(rules)
	w.nRules += n
}

// Remove flushes (by declaring it) and deletes a chain; the deletion comes
// after every rule so that nothing the input writes still jumps to it.
func (w *Writer) Remove(chain string) {
	w.Declare(chain)
	w.deletes.WriteString("-X ")
	w.deletes.WriteString(chain)
	w.deletes.WriteByte('\n')
}

// Bytes returns the complete restore input of the table, with the chains
// and rules of more (the per-service chains, kept apart so that the
// top-level chains read first) after w's own. The input is built in the
// rules buffer with the most room when it is big enough (a full payload
// reserves the per-service one, a partial payload that rewrites the
// top-level chains reserves those), so that a 30 MB payload is not copied
// into a second 30 MB buffer.
func (w *Writer) Bytes(more ...*Writer) []byte {
	all := append([]*Writer{w}, more...)
	head, tail := w.Head(more...), w.Tail(more...)
	n, big := len(head)+len(tail), 0
	for i, x := range all {
		n += x.rules.Len()
		if x.rules.Cap() > all[big].rules.Cap() {
			big = i
		}
	}
	body := all[big].rules.Bytes()
	if cap(body) < n {
		out := make([]byte, 0, n)
		out = append(out, head...)
		for _, x := range all {
			out = append(out, x.rules.Bytes()...)
		}
		return append(out, tail...)
	}
	// Shift the big buffer's rules to where they belong and fill in
	// around them.
	at := len(head)
	for _, x := range all[:big] {
		at += x.rules.Len()
	}
	out := body[:n]
	copy(out[at:], body)
	copy(out, head)
	off := len(head)
	for _, x := range all[:big] {
		off += copy(out[off:], x.rules.Bytes())
	}
	off = at + len(body)
	for _, x := range all[big+1:] {
		off += copy(out[off:], x.rules.Bytes())
	}
	copy(out[off:], tail)
	all[big].rules.Reset()
	return out
}

// Head returns the start of the restore input of the table: its name and
// the chain declarations of w, then of more.
func (w *Writer) Head(more ...*Writer) []byte {
	var b bytes.Buffer
	b.WriteString("*" + string(w.table) + "\n")
	b.Write(w.chains.Bytes())
	for _, x := range more {
		b.Write(x.chains.Bytes())
	}
	return b.Bytes()
}

// Tail returns the end of the restore input of the table: the deletions of
// w, then of more, and COMMIT.
func (w *Writer) Tail(more ...*Writer) []byte {
	var b bytes.Buffer
	b.Write(w.deletes.Bytes())
	for _, x := range more {
		b.Write(x.deletes.Bytes())
	}
	b.WriteString("COMMIT\n")
	return b.Bytes()
}

// ChainWriter writes the restore input of a table whose chains are all
// declared first and each filled in full, when rules come in no chain
// order: each chain's rules are kept apart and written chain by chain, in
// the order the chains were declared, as iptables-save lists them.
type ChainWriter struct {
	order  []*Writer
	chains map[string]*Writer
}

// NewChainWriter returns a ChainWriter for table that declares chains, in
// that order.
func NewChainWriter(table Table, chains ...string) *ChainWriter {
	w := &ChainWriter{chains: make(map[string]*Writer, len(chains))}
	for _, c := range chains {
		cw := NewWriter(table)
		cw.Declare(c)
		w.order = append(w.order, cw)
		w.chains[c] = cw
	}
	return w
}

// Add appends a rule to one of the declared chains (see Writer.Add).
func (w *ChainWriter) Add(chain string, args ...string) {
	w.chains[chain].Add(chain, args...)
}

// Rules is the number of rules added.
func (w *ChainWriter) Rules() int {
	n := 0
	for _, cw := range w.order {
		n += cw.Rules()
	}
	return n
}

// Bytes returns the complete restore input of the table.
func (w *ChainWriter) Bytes() []byte {
	return w.order[0].Bytes(w.order[1:]...)
}
