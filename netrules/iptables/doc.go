// Package iptables is the iptables backend of berth's service proxy: it
// programs a proxy.State with kube-proxy's semantics (Kubernetes v1.37) in
// chains of its own.
//
// # Rendering
//
// Render is pure: it turns a State into one iptables-restore --noflush input
// per table (filter, nat). Every chain berth creates starts with "BERTH-";
// chains this backend did not create (another program's, or berth's IPVS
// mode's) are never flushed, written or deleted. The
// top-level chains (BERTH-SERVICES, BERTH-NODEPORTS, BERTH-POSTROUTING,
// BERTH-MARK-MASQ, BERTH-MARK-OFFCLUSTER in nat; BERTH-SERVICES,
// BERTH-EXTERNAL-SERVICES, BERTH-NODEPORTS, BERTH-FIREWALL, BERTH-FORWARD in
// filter) are rewritten in full by every payload and reached from the
// built-in chains by one jump rule each (HookRules), which the Backend
// inserts with go-iptables when missing. Each service port has chains named
// from a hash of its ServicePortName.Key() (and, for an endpoint, of the
// endpoint's address) plus a readable suffix:
//
//	BERTH-SVC-<hash>-<name>  round robin over the cluster endpoints
//	BERTH-SVX-<hash>-<name>  round robin over the external endpoints, when
//	                         they are not the cluster endpoints
//	BERTH-EXT-<hash>-<name>  external destinations (node port, external and
//	                         load-balancer IPs): masquerade, or for
//	                         externalTrafficPolicy: Local the short circuits
//	                         of the node's and its pods' own traffic
//	BERTH-FW-<hash>-<name>   loadBalancerSourceRanges
//	BERTH-SEP-<hash>-<addr>  one endpoint: hairpin masquerade, affinity, DNAT
//
// Traffic is masqueraded by marking it (BERTH-MARK-MASQ sets the
// masquerade bit, 0x4000 by default) and BERTH-POSTROUTING masquerading
// what carries the mark, after clearing it. A destination without endpoints
// is rejected in filter (REJECT, as kube-proxy: the client sees "connection
// refused" rather than a timeout), or dropped when the service's
// externalTrafficPolicy is Local and this node has no endpoint for it.
//
// A partial payload (a non-nil changed set) declares and fills the chains of
// the changed service ports only; the others stay as the kernel holds them.
// Chains no longer needed are flushed and deleted in the same payload.
//
// # Round robin
//
// A service port's endpoints take new connections in turn: rule i of n in
// its SVC (or SVX) chain is "-m statistic --mode nth --every n-i --packet 0",
// the last rule takes the rest. Each rule keeps a counter that only the
// connections reaching it advance, so connection k through the chain (k
// from 0) goes to endpoint k mod n, in the order the State lists them.
// Precisely, this holds:
//
//   - per node: each node's kernel counts its own connections;
//   - per service port and chain: the cluster IP and the external
//     destinations of a port share its SVC chain (and so one turn), unless
//     the external endpoints differ (SVX, a turn of its own);
//   - per new connection: only a connection's first packet (conntrack NEW)
//     goes through nat; for UDP a connection is a conntrack flow (same
//     addresses and ports, until it times out);
//   - connections that session affinity sends to the endpoint a client used
//     before do not take a turn;
//   - the counters start again (at the first endpoint) whenever the rules of
//     the chain are rewritten: a full sync, a partial sync that includes the
//     service port, and with iptables-legacy any sync, since the legacy
//     kernel interface replaces the whole table. A sync that leaves the
//     chain alone (nf_tables) leaves its counters alone.
//
// The kernel advances the counters atomically, so concurrent connections on
// several CPUs do not break the turn.
//
// # Session affinity
//
// ClientIP affinity uses the recent match: a SEP chain records the client
// (--set, in a list named after the chain) and the SVC chain sends a client
// seen within the timeout back (--rcheck --seconds T --reap) before the round
// robin. As with kube-proxy, the recent match keeps 100 clients per list by
// default (the xt_recent module's ip_list_tot): beyond that the oldest lose
// their affinity.
//
// # Applying
//
// Backend implements proxy.Backend, through the lower layer it shares with
// the IPVS backend (netrules/xtables). It finds out once whether iptables is
// the nf_tables or the legacy one and uses that backend's restore and save
// binaries; applies each table's payload with one atomic
// "iptables-restore --noflush --wait"; on a full sync lists the existing
// berth chains with iptables-save (a partial sync trusts what the previous
// one left), streams the nat payload into iptables-restore as it renders it
// (Renderer.RenderStreamed: at 10,000 services 28 MB that are never held
// whole) and checks the hooks. When iptables-restore rejects a payload,
// the table keeps its previous rules, the lines around the one it names are
// logged and returned in an xtables.RestoreError, and the next sync is full:
// the proxier decides which syncs are full, and until a full one succeeds
// the Backend refuses a partial one with proxy.ErrFullSyncRequired.
//
// netrules/iptables/testing holds a fake iptables that keeps rules and
// traces packets through them, and the contract suite the fake and the
// kernel (as root, in a network namespace of the test's own) both pass.
// The backend's behaviour (where packets land, masqueraded or not, dropped
// or rejected) is proxy/proxytest's table, which the tests play through the
// fake's tracer and through the kernel; the cases it does not pass are
// listed, with the reason, in trace_test.go (Except).
package iptables
