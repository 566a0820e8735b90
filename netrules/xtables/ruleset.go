package xtables

import (
	"bytes"
	"strings"
)

// Ruleset is iptables-save output (or iptables-restore input) read whole:
// each table's chains and their rules.
type Ruleset map[Table]*TableRules

// TableRules are one table's chains and rules.
type TableRules struct {
	// Chains are the declared chains, in the order they are declared.
	Chains []string
	// Rules are each chain's rules in order (Line.Rule of its "-A"
	// lines); other commands are not applied.
	Rules map[string][]string
	// declared are the declared chains.
	declared map[string]bool
}

// ParseRuleset reads iptables-save output of one or more tables.
func ParseRuleset(data []byte) Ruleset {
	rs := Ruleset{}
	rs.Read("", data)
	return rs
}

// Read adds the tables of data to rs; the lines before the first "*table"
// line are table's.
func (rs Ruleset) Read(table Table, data []byte) {
	p := Parser{Table: table}
	for line := range strings.Lines(string(data)) {
		l := p.Parse(line)
		switch {
		case l.Kind == LineChain:
			t := rs.table(l.Table)
			if !t.declared[l.Chain] {
				t.declared[l.Chain] = true
				t.Chains = append(t.Chains, l.Chain)
			}
		case l.Kind == LineCommand && (l.Command == "-A" || l.Command == "--append"):
			t := rs.table(l.Table)
			t.Rules[l.Chain] = append(t.Rules[l.Chain], l.Rule)
		}
	}
}

func (rs Ruleset) table(t Table) *TableRules {
	if rs[t] == nil {
		rs[t] = &TableRules{Rules: map[string][]string{}, declared: map[string]bool{}}
	}
	return rs[t]
}

// Has tells whether table declares chain.
func (rs Ruleset) Has(table Table, chain string) bool {
	t := rs[table]
	return t != nil && t.declared[chain]
}

// Rules returns the rules of a chain of table.
func (rs Ruleset) Rules(table Table, chain string) []string {
	if t := rs[table]; t != nil {
		return t.Rules[chain]
	}
	return nil
}

// ChainScanner is an io.Writer that reads iptables-save output as it comes
// and reports each chain it declares, so that the output (tens of megabytes
// at 10,000 services, nearly all of it rules) is never held whole: of a
// line it keeps only what tells whether it declares a chain or starts a
// table, and it parses only those.
type ChainScanner struct {
	found  func(table Table, chain string)
	parser Parser
	// partial is the start of a line the last Write did not finish.
	partial []byte
}

// NewChainScanner returns a ChainScanner that calls found for each chain
// declaration.
func NewChainScanner(found func(table Table, chain string)) *ChainScanner {
	return &ChainScanner{found: found}
}

// Write implements io.Writer.
func (s *ChainScanner) Write(b []byte) (int, error) {
	n := len(b)
	if len(s.partial) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.partial = s.keep(s.partial, b)
			return n, nil
		}
		s.line(s.keep(s.partial, b[:i]))
		s.partial, b = s.partial[:0], b[i+1:]
	}
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		s.line(b[:i])
		b = b[i+1:]
	}
	s.partial = s.keep(s.partial, b)
	return n, nil
}

// line parses a table or chain line; the rest (rules, nearly all of the
// output) is skipped unread.
func (s *ChainScanner) line(b []byte) {
	if len(b) == 0 || b[0] != '*' && b[0] != ':' {
		return
	}
	if l := s.parser.Parse(string(b)); l.Kind == LineChain {
		s.found(l.Table, l.Chain)
	}
}

// keep appends the unfinished line b to partial, but only as much of it as
// tells what the line is: a chain declaration's name fits in maxLineKept
// bytes, and rules, which can be long, are never parsed.
func (s *ChainScanner) keep(partial, b []byte) []byte {
	room := max(0, maxLineKept-len(partial))
	return append(partial, b[:min(len(b), room)]...)
}

// maxLineKept bounds what a ChainScanner keeps of a line between writes.
const maxLineKept = 256

// Close parses a last line without a newline.
func (s *ChainScanner) Close() error {
	if len(s.partial) > 0 {
		s.line(s.partial)
		s.partial = s.partial[:0]
	}
	return nil
}
