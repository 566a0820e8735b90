// Package xtables is the lower layer both of berth's netfilter backends
// (netrules/iptables and netrules/ipvs) program the kernel through: running
// iptables-save and iptables-restore, finding out whether the node's
// iptables is the nf_tables or the legacy one and setting up go-iptables on
// the matching binary, writing iptables-restore input (streamed when it is
// too big to hold), inserting the jumps from the built-in chains, quoting
// comments, and logging the lines of a payload iptables-restore rejected.
// Whether a sync is full is not decided here, nor in the backends: the
// proxier decides (see proxy.Backend).
//
// It also holds the one parser of iptables-save output (and
// iptables-restore input) in the tree: the backends read their chains with
// it, "berth rules explain" reads the kernel's rules with it, and the fakes
// of netrules/iptables/testing and netrules/ipvs/testing read the payloads
// they are given with it.
//
// What a chain means is not known here: each backend names its own chains.
package xtables
