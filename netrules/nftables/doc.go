// Package nftables is the nftables backend of berth's service proxy: it
// programs a proxy.State into a table of berth's own, "ip berth" or "ip6
// berth" (one Backend per family, as the other backends), through netlink
// (github.com/google/nftables; docs/proxy.md says why not knftables), one
// transaction per sync. It creates its own base chains and never touches a
// table, chain or set it did not create.
//
// # The table
//
// Base chains: nat prerouting and output (priority dstnat) jump to
// "services"; nat postrouting (srcnat) masquerades what carries the
// masquerade mark (0x4000 by default) or is an endpoint reaching itself
// (the hairpin set); filter input, forward and output (priority filter -
// 1) send new connections to "no-endpoints" (and forward drops what
// conntrack finds INVALID, unless tcpBeLiberal). Dispatch is by map
// lookups, so that the cost per packet does not grow with the number of
// services:
//
//	service-ips            daddr . l4proto . dport -> goto the port's chain
//	service-nodeports      l4proto . dport (to a local address, not
//	                       loopback, or to the node-port addresses) -> goto
//	no-endpoint-ips        daddr . l4proto . dport -> goto reject, or drop
//	no-endpoint-nodeports  l4proto . dport -> goto reject, or drop
//	cluster-ips            a new connection to a cluster IP that nothing
//	                       DNATed (a port no service uses) is rejected
//	endpoints-00..7f       numgen value -> endpoint address . port
//	hairpin                endpoint . endpoint
//
// Each service port has chains named from a hash of its key and a readable
// suffix: svc- (cluster IPs: detect-local or masqueradeAll marking, then the
// round robin over the cluster endpoints), svx- (the external endpoints,
// when they differ), ext- (external destinations: masquerade, or for
// externalTrafficPolicy: Local the short circuits of pod and node traffic
// to the cluster endpoints), fw- (loadBalancerSourceRanges: the rest falls
// through un-DNATed and filter drops it).
//
// # Round robin
//
// A balancing chain ends in "dnat to numgen inc mod N offset B map
// @endpoints-NN": the chain owns the values B..B+N-1 of one of 128 shared
// maps (chosen by a hash of the port), value B+i mapping to endpoint i.
// The kernel keeps one counter per numgen expression, shared by all CPUs,
// and advances it with an atomic compare-and-exchange (nft_ng_inc_gen), so
// that the k-th packet (from 0) evaluating the expression gets k mod N,
// whichever CPU it runs on and however many run at once. So, precisely:
//
//   - per node, and per balancing chain: the cluster IPs and the external
//     destinations of a port share its svc- chain's turn, unless its
//     external endpoints differ (svx-, a turn of its own);
//   - per new connection: only a connection's first packet goes through
//     nat; for UDP a connection is a conntrack flow;
//   - connections that session affinity sends back to an endpoint take no
//     turn;
//   - the counter starts again at endpoint 0 when the rule is rewritten:
//     a full sync, or a partial sync that changes the number of the port's
//     endpoints (or its masquerade rules). A partial sync that replaces
//     endpoints but not their number changes map elements only, and the
//     turn goes on.
//
// TestKernelRoundRobin checks it: 30 connections to 3 endpoints land
// 10/10/10, in the State's order.
//
// Why shared maps in shards: the kernel checks every element of a data map
// against every rule that looks it up, and finds a set by name by walking
// the table's sets. At 10,000 services one map for all made a cold sync
// take 6.3 s, a map per service 9.4 s (the library benchmark), 128 shards
// 1.2 s (docs/proxy.md).
//
// # Session affinity
//
// A ClientIP service's balancing chain is kube-proxy's: a set per endpoint
// ("flags dynamic,timeout") holds its clients; a client in one goes to that
// endpoint's chain, which refreshes the client's entry and DNATs; the others
// take "numgen inc mod N vmap" to an endpoint chain. The names hash the
// endpoint list, so a change of endpoints starts affinity afresh rather
// than keep clients on an endpoint that is gone. (A dynamic map from client
// to numgen value would need no per-endpoint chains, but nft 1.0.6 aborts
// listing such rules.)
//
// # Syncs
//
// A full sync (nil changed) deletes and re-creates the table in one
// transaction. A partial sync sends, in one transaction, only what differs
// for the changed service ports: shared-map elements added, replaced or
// deleted (an element two ports share, such as a hairpin address, stays
// while one holds it), chains whose rules changed flushed and refilled,
// chains and sets no longer used deleted. A transaction commits whole or
// not at all: after any error the kernel keeps the previous rules, the
// Backend forgets what it programmed, and it refuses the next partial sync
// with proxy.ErrFullSyncRequired. Whether a sync is full is the caller's
// decision alone.
//
// # Not done
//
// Health-check node ports need no rule (the iptables backend's ACCEPT
// matters only under a DROP policy of its own chain; an nftables accept
// does not override another table's drop). Node ports on localhost are not
// served, as in kube-proxy's nftables mode and berth's iptables backend
// (they need route_localnet).
package nftables
