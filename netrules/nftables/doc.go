// Package nftables is the nftables backend of berth's service proxy: it
// programs a proxy.State into a table of berth's own (ip berth, ip6 berth;
// one Backend per family) through netlink (github.com/google/nftables),
// one transaction per sync. It never touches a table it did not create.
//
// # The table
//
// Base chains hook nat prerouting and output (dstnat) into the regular
// chain "services", nat postrouting (srcnat) masquerades what carries the
// masquerade mark, and filter input/forward/output (priority filter - 1)
// send new connections to "no-endpoints". Dispatch is by verdict maps, so
// that the per-packet cost does not grow with the number of services:
//
//	service-ips            daddr . l4proto . dport  -> goto svc-/ext- chain
//	service-nodeports      l4proto . dport (local daddr) -> goto ext- chain
//	no-endpoint-ips        daddr . l4proto . dport  -> goto reject, or drop
//	no-endpoint-nodeports  l4proto . dport          -> goto reject, or drop
//
// Each service port has chains named from a hash of its key plus a
// readable suffix: svc- (cluster endpoints), svx- (external endpoints when
// they differ), ext- (external destinations: masquerade, or the
// externalTrafficPolicy: Local short circuits), sep- (one endpoint:
// hairpin masquerade, DNAT), and a named map rr- per balancing chain.
//
// # Round robin
//
// A balancing chain ends in "numgen inc mod N vmap @rr-...", the map
// sending value i to endpoint i. The kernel keeps one counter per numgen
// expression, shared by every CPU, and advances it with an atomic
// compare-and-exchange (nft_ng_inc_gen), so the k-th packet (from 0) that
// evaluates the expression gets k mod N, whichever CPU it runs on and
// however many run at once. Precisely:
//
//   - per node and per balancing chain: the cluster IP and the external
//     destinations of a port share its svc- chain's turn, unless the
//     external endpoints differ (svx-, a turn of its own);
//   - per new connection: only a connection's first packet goes through
//     nat; for UDP a connection is a conntrack flow;
//   - the counter starts again at endpoint 0 when the rule is rewritten: a
//     full sync, or a partial sync that includes the service port.
//
// TestKernelRoundRobin checks it: 30 connections to 3 endpoints land
// 10/10/10, in the State's order.
//
// # Syncs
//
// A full sync (nil changed) deletes and re-creates the table in one
// transaction. A partial sync rewrites, in one transaction, only the
// changed service ports: their shared-map elements, their chains (flushed,
// refilled, deleted when no longer needed) and their rr- maps. The
// transaction commits whole or not at all; after any error the Backend
// forgets what it programmed and refuses the next partial sync with
// proxy.ErrFullSyncRequired.
//
// Round-robin maps are named, not anonymous: the kernel gives an
// anonymous set ("__map%d") the first free number by scanning every set of
// the table, which made a cold load of 10,000 services take 100 s instead
// of 8.5 s (docs/proxy.md).
//
// Not done yet: loadBalancerSourceRanges, sessionAffinity ClientIP,
// health-check node ports, localhost node ports.
package nftables
