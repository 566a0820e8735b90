package ipvs

import "github.com/berthnode/berth/netrules/xtables"

// ChainPrefix starts the name of every chain the IPVS backend creates; it
// never writes or deletes another chain.
const ChainPrefix = "BERTH-IPVS-"

// The chains of the IPVS backend. Each is rewritten in full by every payload
// that writes its table; the built-in chains reach them by HookRules.
const (
	// ChainServices is, in nat, the entry for new connections (from
	// PREROUTING and OUTPUT): the masquerade marks of each virtual address
	// and port, then an ACCEPT that keeps later nat rules off IPVS traffic.
	// In filter it rejects or drops what has no endpoints.
	ChainServices = "BERTH-IPVS-SERVICES"
	// ChainNodePorts is, in nat, the masquerade marks of node ports; in
	// filter, the ACCEPT of node ports and health-check node ports.
	ChainNodePorts = "BERTH-IPVS-NODEPORTS"
	// ChainPostrouting (nat) masquerades hairpin traffic and what carries
	// the masquerade mark.
	ChainPostrouting = "BERTH-IPVS-POSTROUTING"
	// ChainMarkMasq (nat) sets the masquerade mark.
	ChainMarkMasq = "BERTH-IPVS-MARK-MASQ"
	// ChainMarkOffCluster (nat) marks what does not come from a cluster
	// CIDR, when there is more than one.
	ChainMarkOffCluster = "BERTH-IPVS-MARK-OFFCLUSTER"
	// ChainInput (filter, from INPUT) runs the filter chains in order.
	ChainInput = "BERTH-IPVS-INPUT"
	// ChainFirewall (filter) drops load-balancer traffic from outside
	// loadBalancerSourceRanges.
	ChainFirewall = "BERTH-IPVS-FIREWALL"
	// ChainFilter (filter) rejects new connections to the dummy
	// interface's addresses on ports that are not service ports.
	ChainFilter = "BERTH-IPVS-FILTER"
	// ChainForward (filter, from FORWARD) accepts marked and established
	// service traffic.
	ChainForward = "BERTH-IPVS-FORWARD"
)

// tableChains lists the chains of a table, in the order they are declared.
func tableChains(t xtables.Table) []string {
	if t == xtables.TableNAT {
		return []string{ChainServices, ChainNodePorts, ChainPostrouting, ChainMarkMasq, ChainMarkOffCluster}
	}
	return []string{ChainInput, ChainFirewall, ChainServices, ChainNodePorts, ChainFilter, ChainForward}
}

// HookRules lists the jumps from the built-in chains to the backend's
// chains: one each, inserted first in the chain when missing.
func HookRules() []xtables.Hook {
	hook := func(t xtables.Table, chain, text, target string) xtables.Hook {
		return xtables.Hook{Table: t, Chain: chain, Rule: []string{"-m", "comment", "--comment", text, "-j", target}}
	}
	return []xtables.Hook{
		hook(xtables.TableNAT, "PREROUTING", "berth IPVS service portals", ChainServices),
		hook(xtables.TableNAT, "OUTPUT", "berth IPVS service portals", ChainServices),
		hook(xtables.TableNAT, "POSTROUTING", "berth IPVS postrouting rules", ChainPostrouting),
		hook(xtables.TableFilter, "INPUT", "berth IPVS input rules", ChainInput),
		hook(xtables.TableFilter, "FORWARD", "berth IPVS forwarding rules", ChainForward),
	}
}
