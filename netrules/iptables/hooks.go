package iptables

import "github.com/berthnode/berth/netrules/xtables"

// HookRules lists the jumps from the built-in chains to berth's top-level
// chains: one rule each, which berth inserts first in the chain when it is
// missing and otherwise leaves alone.
func HookRules() []xtables.Hook {
	newOnly := []string{"-m", "conntrack", "--ctstate", "NEW"}
	jump := func(table xtables.Table, chain string, ctNew bool, text, target string) xtables.Hook {
		var rule []string
		if ctNew {
			rule = append(rule, newOnly...)
		}
		rule = append(rule, "-m", "comment", "--comment", text, "-j", target)
		return xtables.Hook{Table: table, Chain: chain, Rule: rule}
	}
	return []xtables.Hook{
		jump(xtables.TableNAT, "PREROUTING", false, "berth service portals", ChainServices),
		jump(xtables.TableNAT, "OUTPUT", false, "berth service portals", ChainServices),
		jump(xtables.TableNAT, "POSTROUTING", false, "berth postrouting rules", ChainPostrouting),
		jump(xtables.TableFilter, "INPUT", false, "berth health check service ports", ChainNodePorts),
		jump(xtables.TableFilter, "INPUT", true, "berth externally-visible service portals", ChainExternalServices),
		jump(xtables.TableFilter, "INPUT", true, "berth load balancer firewall", ChainFirewall),
		jump(xtables.TableFilter, "FORWARD", false, "berth forwarding rules", ChainForward),
		jump(xtables.TableFilter, "FORWARD", true, "berth service portals", ChainServices),
		jump(xtables.TableFilter, "FORWARD", true, "berth externally-visible service portals", ChainExternalServices),
		jump(xtables.TableFilter, "FORWARD", true, "berth load balancer firewall", ChainFirewall),
		jump(xtables.TableFilter, "OUTPUT", true, "berth service portals", ChainServices),
		jump(xtables.TableFilter, "OUTPUT", true, "berth load balancer firewall", ChainFirewall),
	}
}
