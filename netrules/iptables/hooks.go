package iptables

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

// Hook is one jump from a built-in chain to a top-level berth chain.
type Hook struct {
	// Table and Chain are where the jump rule lives.
	Table Table
	Chain string
	// Rule is the rule, one argument per element (no quoting).
	Rule []string
}

// HookRules lists the jumps from the built-in chains to berth's top-level
// chains: one rule each, which berth inserts first in the chain when it is
// missing and otherwise leaves alone.
func HookRules() []Hook {
	newOnly := []string{"-m", "conntrack", "--ctstate", "NEW"}
	jump := func(table Table, chain string, ctNew bool, text, target string) Hook {
		var rule []string
		if ctNew {
			rule = append(rule, newOnly...)
		}
		rule = append(rule, "-m", "comment", "--comment", text, "-j", target)
		return Hook{Table: table, Chain: chain, Rule: rule}
	}
	return []Hook{
		jump(TableNAT, "PREROUTING", false, "berth service portals", ChainServices),
		jump(TableNAT, "OUTPUT", false, "berth service portals", ChainServices),
		jump(TableNAT, "POSTROUTING", false, "berth postrouting rules", ChainPostrouting),
		jump(TableFilter, "INPUT", false, "berth health check service ports", ChainNodePorts),
		jump(TableFilter, "INPUT", true, "berth externally-visible service portals", ChainExternalServices),
		jump(TableFilter, "INPUT", true, "berth load balancer firewall", ChainFirewall),
		jump(TableFilter, "FORWARD", false, "berth forwarding rules", ChainForward),
		jump(TableFilter, "FORWARD", true, "berth service portals", ChainServices),
		jump(TableFilter, "FORWARD", true, "berth externally-visible service portals", ChainExternalServices),
		jump(TableFilter, "FORWARD", true, "berth load balancer firewall", ChainFirewall),
		jump(TableFilter, "OUTPUT", true, "berth service portals", ChainServices),
		jump(TableFilter, "OUTPUT", true, "berth load balancer firewall", ChainFirewall),
	}
}

// EnsureHooks inserts the missing ones of rules (HookRules, or the IPVS
// backend's); it returns how many it added. The chains they jump to must
// exist (the payload declares them).
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
