package xtables

import "fmt"

// Hooks checks and inserts rules in built-in chains, one at a time. The
// *IPTables of github.com/coreos/go-iptables satisfies it; the fake in
// netrules/iptables/testing does too.
type Hooks interface {
	// Exists tells whether chain of table holds the rule.
	Exists(table, chain string, rulespec ...string) (bool, error)
	// Insert puts the rule at position pos (from 1) of chain.
	Insert(table, chain string, pos int, rulespec ...string) error
}

// Hook is one jump from a built-in chain to a chain of a backend.
type Hook struct {
	// Table and Chain are where the jump rule lives.
	Table Table
	Chain string
	// Rule is the rule, one argument per element (no quoting).
	Rule []string
}

// EnsureHooks inserts the missing ones of rules, each first in its chain;
// it returns how many it added. The chains they jump to must exist (the
// payload declares them).
func EnsureHooks(h Hooks, rules []Hook) (int, error) {
	added := 0
	for _, hk := range rules {
		ok, err := h.Exists(string(hk.Table), hk.Chain, hk.Rule...)
		if err != nil {
			return added, fmt.Errorf("checking the jump from %s %s: %w", hk.Table, hk.Chain, err)
		}
		if ok {
			continue
		}
		if err := h.Insert(string(hk.Table), hk.Chain, 1, hk.Rule...); err != nil {
			return added, fmt.Errorf("inserting the jump from %s %s: %w", hk.Table, hk.Chain, err)
		}
		added++
	}
	return added, nil
}
