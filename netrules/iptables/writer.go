package iptables

import (
	"bytes"
	"strings"
)

// tableWriter accumulates the iptables-restore input of one table: chain
// declarations first (each flushes the chain under --noflush), then rules,
// then deletions, then COMMIT.
type tableWriter struct {
	table   Table
	chains  bytes.Buffer
	rules   bytes.Buffer
	deletes bytes.Buffer
	// nRules counts the -A lines.
	nRules int
	// countOnly makes add count the rules without writing them (a
	// streamed payload writes them later, see natStream).
	countOnly bool
}

func newTableWriter(t Table) *tableWriter {
	return &tableWriter{table: t}
}

// reset empties the writer.
func (w *tableWriter) reset() {
	w.chains.Reset()
	w.rules.Reset()
	w.deletes.Reset()
	w.nRules = 0
}

// empty tells whether nothing was written.
func (w *tableWriter) empty() bool {
	return w.chains.Len() == 0 && w.rules.Len() == 0 && w.deletes.Len() == 0
}

// declare writes the chain's declaration: it creates the chain, or flushes
// it if it exists.
func (w *tableWriter) declare(chain string) {
	w.chains.WriteByte(':')
	w.chains.WriteString(chain)
	w.chains.WriteString(" - [0:0]\n")
}

// add appends a rule to chain. args must already be in the order
// iptables-save prints them in (-s, -d, -p, then matches, then -j), so that
// what berth writes and what the kernel reports compare equal.
func (w *tableWriter) add(chain string, args ...string) {
	if w.countOnly {
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

// remove flushes (by declaring it) and deletes a chain; the deletion comes
// after every rule so that nothing the payload writes still jumps to it.
func (w *tableWriter) remove(chain string) {
	w.declare(chain)
	w.deletes.WriteString("-X ")
	w.deletes.WriteString(chain)
	w.deletes.WriteByte('\n')
}

// bytes returns the complete restore input of the table, with the chains
// and rules of more (the per-service chains, kept apart so that the top-level
// chains read first) after w's own. The input is built in the rules buffer
// with the most room when it is big enough (a full payload reserves the
// per-service one, a partial payload that rewrites the top-level chains
// reserves those), so that a 30 MB payload is not copied into a second
// 30 MB buffer.
func (w *tableWriter) bytes(more ...*tableWriter) []byte {
	all := append([]*tableWriter{w}, more...)
	head, tail := w.head(more...), w.tail(more...)
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

// head returns the start of the restore input of the table: its name and
// the chain declarations of w, then of more.
func (w *tableWriter) head(more ...*tableWriter) []byte {
	var b bytes.Buffer
	b.WriteString("*" + string(w.table) + "\n")
	b.Write(w.chains.Bytes())
	for _, x := range more {
		b.Write(x.chains.Bytes())
	}
	return b.Bytes()
}

// tail returns the end of the restore input of the table: the deletions of
// w, then of more, and COMMIT.
func (w *tableWriter) tail(more ...*tableWriter) []byte {
	var b bytes.Buffer
	b.Write(w.deletes.Bytes())
	for _, x := range more {
		b.Write(x.deletes.Bytes())
	}
	b.WriteString("COMMIT\n")
	return b.Bytes()
}

// QuoteComment quotes a comment the way iptables-save prints it: bare when it
// is made only of letters, digits, underscores and dashes, else in double
// quotes, with double quotes, single quotes and backslashes escaped by a
// backslash.
func QuoteComment(s string) string {
	bare := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			bare = false
			break
		}
	}
	if bare {
		return s
	}
	if !strings.ContainsAny(s, `"\'`) {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' || r == '\'' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// maxComment is the longest comment the comment match takes (256 bytes with
// the terminating NUL).
const maxComment = 255

// commentText makes a service's name safe to put in a comment: Kubernetes
// names never need it, but the renderer must not let any State produce input
// iptables-restore cannot parse.
func commentText(s string) string {
	safe := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:", r)
	}
	if strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if safe(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// comment returns the comment match for text, cut to what the kernel takes
// and quoted as iptables-save would, as one argument of tableWriter.add.
func comment(text string) string {
	if len(text) > maxComment {
		text = text[:maxComment]
	}
	return "-m comment --comment " + QuoteComment(text)
}
