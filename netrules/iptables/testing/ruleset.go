package testing

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/berthnode/berth/netrules/xtables"
)

// builtinChains are each table's built-in chains, in iptables-save's order.
func builtinChains(table string) []string {
	switch table {
	case "filter":
		return []string{"INPUT", "FORWARD", "OUTPUT"}
	case "nat":
		return []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}
	}
	return nil
}

// chain is a chain and its rules.
type chain struct {
	builtin bool
	policy  string
	rules   []*parsedRule
}

// table is a table's chains.
type table struct {
	name   string
	chains map[string]*chain
}

func newTable(name string) *table {
	t := &table{name: name, chains: map[string]*chain{}}
	for _, c := range builtinChains(name) {
		t.chains[c] = &chain{builtin: true, policy: "ACCEPT"}
	}
	return t
}

// clone copies the table for a transaction; the rules are shared, since a
// rule never changes once made (but for its counters, which belong to it).
func (t *table) clone() *table {
	c := &table{name: t.name, chains: make(map[string]*chain, len(t.chains))}
	for name, ch := range t.chains {
		cp := *ch
		cp.rules = slices.Clone(ch.rules)
		c.chains[name] = &cp
	}
	return c
}

// userChains lists the user-defined chains, sorted.
func (t *table) userChains() []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(t.chains)) {
		if !t.chains[name].builtin {
			out = append(out, name)
		}
	}
	return out
}

// referenced tells whether a rule jumps to chain.
func (t *table) referenced(name string) bool {
	for _, ch := range t.chains {
		for _, r := range ch.rules {
			if r.action.jump == name {
				return true
			}
		}
	}
	return false
}

// checkJumps finds a jump to a chain that does not exist.
func (t *table) checkJumps() error {
	for _, name := range slices.Sorted(maps.Keys(t.chains)) {
		for _, r := range t.chains[name].rules {
			if r.action.jump != "" && t.chains[r.action.jump] == nil {
				return fmt.Errorf("chain %s: jump to chain %q that does not exist", name, r.action.jump)
			}
		}
	}
	return nil
}

// save prints the table as iptables-save does.
func (t *table) save(b *strings.Builder) {
	b.WriteString("*" + t.name + "\n")
	order := append(builtinChains(t.name), t.userChains()...)
	for _, name := range order {
		policy := t.chains[name].policy
		if !t.chains[name].builtin {
			policy = "-"
		}
		fmt.Fprintf(b, ":%s %s [0:0]\n", name, policy)
	}
	for _, name := range order {
		for _, r := range t.chains[name].rules {
			b.WriteString("-A " + name + " " + r.Text + "\n")
		}
	}
	b.WriteString("COMMIT\n")
}

// ruleset is one family's tables.
type ruleset struct {
	family int
	tables map[string]*table
}

func newRuleset(family int) *ruleset {
	return &ruleset{family: family, tables: map[string]*table{"filter": newTable("filter"), "nat": newTable("nat")}}
}

// restoreError is a rejected restore, with the line to blame.
type restoreError struct {
	line int
	err  error
}

func (e *restoreError) Error() string {
	return fmt.Sprintf("%v\nError occurred at line: %d", e.err, e.line)
}

// restore applies iptables-restore input: each table from "*name" to
// COMMIT is a transaction. With noflush, only the chains the input declares
// are flushed; without, the whole table is replaced.
func (rs *ruleset) restore(f *Fake, input []byte, noflush bool) error {
	var cur *table
	var p xtables.Parser
	lines := strings.Split(string(input), "\n")
	for i, text := range lines {
		l := p.Parse(text)
		var err error
		switch {
		case l.Kind == xtables.LineOther:
		case l.Kind == xtables.LineTable:
			if cur != nil {
				err = fmt.Errorf("table %s not committed", cur.name)
				break
			}
			cur, err = rs.begin(string(l.Table), noflush)
		case cur == nil:
			err = fmt.Errorf("%q outside a table", strings.TrimSpace(text))
		case l.Kind == xtables.LineCommit:
			if err = cur.checkJumps(); err == nil {
				rs.commit(f, cur)
				cur = nil
			}
		case l.Kind == xtables.LineChain:
			err = declare(cur, l)
		default:
			err = rs.command(f, cur, l)
		}
		if err != nil {
			return &restoreError{line: i + 1, err: err}
		}
	}
	if cur != nil {
		return &restoreError{line: len(lines), err: fmt.Errorf("table %s not committed", cur.name)}
	}
	return nil
}

func (rs *ruleset) begin(name string, noflush bool) (*table, error) {
	t, ok := rs.tables[name]
	if !ok {
		return nil, fmt.Errorf("table %q is not modelled by the fake", name)
	}
	if !noflush {
		return newTable(name), nil
	}
	return t.clone(), nil
}

// commit installs a table. The legacy backend replaces the whole table in
// the kernel, which makes every rule (and its nth counter) anew; nf_tables
// only touches the chains the input changed.
func (rs *ruleset) commit(f *Fake, t *table) {
	if f.legacy {
		for _, ch := range t.chains {
			for i, r := range ch.rules {
				fresh, err := parseRule(f, rs.family, t.name, r.args)
				if err == nil {
					ch.rules[i] = fresh
				}
			}
		}
	}
	rs.tables[t.name] = t
}

// declare handles ":NAME POLICY [counters]": creates or flushes a user
// chain, or sets a built-in chain's policy.
func declare(t *table, l xtables.Line) error {
	if l.Chain == "" || l.Policy == "" {
		return fmt.Errorf("%w: bad chain declaration %q", errSyntax, strings.TrimSpace(l.Chain+" "+l.Policy))
	}
	name, policy := l.Chain, l.Policy
	if ch, ok := t.chains[name]; ok && ch.builtin {
		if policy != "-" {
			ch.policy = policy
		}
		return nil
	}
	if err := checkChainName(name); err != nil {
		return err
	}
	t.chains[name] = &chain{policy: "-"}
	return nil
}

func checkChainName(name string) error {
	if len(name) > 28 || name == "" || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "!") {
		return fmt.Errorf("%w: invalid chain name %q", errSyntax, name)
	}
	if _, builtin := builtinTarget(name); builtin {
		return fmt.Errorf("%w: chain name %q is a target", errSyntax, name)
	}
	return nil
}

// command runs one -A, -I, -D, -F, -N or -X line.
func (rs *ruleset) command(f *Fake, t *table, l xtables.Line) error {
	rest, err := xtables.Split(l.Rule)
	if err != nil {
		return fmt.Errorf("%w: %v", errSyntax, err)
	}
	if l.Chain == "" {
		return fmt.Errorf("%w: bad command %q", errSyntax, l.Command)
	}
	cmd, name := l.Command, l.Chain
	ch := t.chains[name]
	if ch == nil && cmd != "-N" {
		return fmt.Errorf("chain '%s' does not exist", name)
	}
	switch cmd {
	case "-A", "--append", "-I", "--insert":
		return rs.insert(f, t, ch, cmd, rest)
	case "-D", "--delete":
		text := xtables.JoinRule(rest)
		for i, r := range ch.rules {
			if r.Text == text {
				ch.rules = slices.Delete(ch.rules, i, i+1)
				return nil
			}
		}
		return fmt.Errorf("no rule %q in chain %s", text, name)
	case "-F", "--flush":
		ch.rules = nil
	case "-N", "--new-chain":
		if ch != nil {
			return fmt.Errorf("chain %s already exists", name)
		}
		if err := checkChainName(name); err != nil {
			return err
		}
		t.chains[name] = &chain{policy: "-"}
	case "-X", "--delete-chain":
		switch {
		case ch.builtin:
			return fmt.Errorf("cannot delete built-in chain %s", name)
		case len(ch.rules) > 0:
			return fmt.Errorf("CHAIN_DEL failed (Device or resource busy): chain %s is not empty", name)
		case t.referenced(name):
			return fmt.Errorf("CHAIN_DEL failed (Device or resource busy): chain %s is referenced", name)
		}
		delete(t.chains, name)
	default:
		return fmt.Errorf("%w: command %q is not modelled by the fake", errSyntax, cmd)
	}
	return nil
}

func (rs *ruleset) insert(f *Fake, t *table, ch *chain, cmd string, args []string) error {
	pos := -1
	if cmd == "-I" || cmd == "--insert" {
		pos = 0
		if len(args) > 0 {
			if n, err := strconv.Atoi(args[0]); err == nil {
				if n < 1 || n > len(ch.rules)+1 {
					return fmt.Errorf("%w: index %d out of range", errSyntax, n)
				}
				pos, args = n-1, args[1:]
			}
		}
	}
	r, err := parseRule(f, rs.family, t.name, args)
	if err != nil {
		return err
	}
	if j := r.action.jump; j != "" && t.chains[j] == nil {
		return fmt.Errorf("chain '%s' does not exist", j)
	}
	if pos < 0 {
		ch.rules = append(ch.rules, r)
	} else {
		ch.rules = slices.Insert(ch.rules, pos, r)
	}
	return nil
}
