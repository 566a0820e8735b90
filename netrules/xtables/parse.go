package xtables

import (
	"errors"
	"strings"
)

// LineKind is what a line of iptables-save output or iptables-restore input
// is.
type LineKind int

// The kinds of line.
const (
	// LineOther is a blank line or a "#" comment.
	LineOther LineKind = iota
	// LineTable starts a table: "*nat".
	LineTable
	// LineChain declares a chain: ":NAME POLICY [packets:bytes]".
	LineChain
	// LineCommand is a command on a chain: "-A CHAIN rule", "-I", "-D",
	// "-F", "-N", "-X".
	LineCommand
	// LineCommit ends a table: "COMMIT".
	LineCommit
)

// Line is one parsed line.
type Line struct {
	// Kind is what the line is.
	Kind LineKind
	// Table is the table the line starts, is in or commits: that of the
	// last "*table" line ("" before any).
	Table Table
	// Chain is the chain a LineChain declares or a LineCommand works on.
	Chain string
	// Policy is a LineChain's policy: "-" for a user-defined chain, ""
	// when the line has none.
	Policy string
	// Command is a LineCommand's command: "-A", "--append", "-I", ...
	Command string
	// Rule is the rest of a LineCommand after its chain, as written: the
	// rule of "-A", an "-I"'s position and rule. Split splits it into
	// arguments.
	Rule string
}

// Parser reads iptables-save output or iptables-restore input line by line,
// keeping track of the table the lines are in.
type Parser struct {
	// Table is the table of the lines read before any "*table" line
	// (input of one table, its header cut); "" by default.
	Table Table
}

// Parse parses one line, without its newline.
func (p *Parser) Parse(s string) Line {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || s[0] == '#':
		return Line{Kind: LineOther, Table: p.Table}
	case s[0] == '*':
		p.Table = Table(strings.TrimSpace(s[1:]))
		return Line{Kind: LineTable, Table: p.Table}
	case s == "COMMIT":
		return Line{Kind: LineCommit, Table: p.Table}
	case s[0] == ':':
		l := Line{Kind: LineChain, Table: p.Table}
		l.Chain, s = cutWord(s[1:])
		l.Policy, _ = cutWord(s)
		return l
	}
	l := Line{Kind: LineCommand, Table: p.Table}
	l.Command, s = cutWord(s)
	l.Chain, l.Rule = cutWord(s)
	return l
}

// cutWord returns the first blank-separated word of s and what follows it,
// without the blanks in between.
func cutWord(s string) (word, rest string) {
	s = strings.TrimLeft(s, " \t")
	end := strings.IndexAny(s, " \t")
	if end < 0 {
		return s, ""
	}
	return s[:end], strings.TrimLeft(s[end:], " \t")
}

// ErrUnterminatedQuote is a rule whose double quotes do not pair up.
var ErrUnterminatedQuote = errors.New("unterminated quote")

// Split splits a rule into arguments the way iptables-restore does: on
// blanks, with double quotes grouping and a backslash escaping a double
// quote, a single quote or a backslash inside them.
func Split(rule string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(rule); i++ {
		c := rule[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(rule) && strings.IndexByte(`"\'`, rule[i+1]) >= 0:
			i++
			cur.WriteByte(rule[i])
		case c == '"':
			inQuote, have = !inQuote, true
		case !inQuote && (c == ' ' || c == '\t'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if inQuote {
		return nil, ErrUnterminatedQuote
	}
	if have {
		out = append(out, cur.String())
	}
	return out, nil
}

// Options maps the arguments of a rule (after "-A CHAIN", as Split returns
// them) to their values ("" for a flag); a negated option is keyed "!" +
// option, and one that repeats (-m) keeps its last value. An option takes
// the next argument as its value unless that is an option itself; a
// comment always takes it.
func Options(args []string) map[string]string {
	opts := make(map[string]string, len(args)/2)
	for i := 0; i < len(args); i++ {
		key := args[i]
		if key == "!" && i+1 < len(args) {
			i++
			key = "!" + args[i]
		}
		val := ""
		if i+1 < len(args) && (key == "--comment" || !strings.HasPrefix(args[i+1], "-") && args[i+1] != "!") {
			i++
			val = args[i]
		}
		opts[key] = val
	}
	return opts
}
