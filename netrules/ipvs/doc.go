// Package ipvs is the IPVS backend of berth's service proxy: it programs a
// proxy.State as kube-proxy's IPVS mode does (Kubernetes v1.37), without
// ipsets.
//
// # Virtual services
//
// Plan turns a State into virtual services, one per address, port and
// protocol: each cluster IP, external IP and load-balancer IP on the
// service port, and the node port on each node-port address
// (NodePortAddresses: the node's own addresses, filtered by
// nodePortAddresses). Every one uses the configured scheduler (rr by
// default), masquerade forwarding, and for ClientIP session affinity the
// persistent flag with the affinity timeout. Its destinations are the
// State's endpoints, weight 1: ClusterEndpoints for cluster IPs,
// ExternalEndpoints for the others. For externalTrafficPolicy Local
// without a local endpoint, the external virtual services hold the cluster
// endpoints instead and the filter rules drop everyone's traffic but the
// node's and its pods' (the State's contract: they are not subject to the
// policy). A terminating endpoint listed beside ready ones gets weight 0.
//
// The cluster, external and load-balancer IPs are assigned (/32, /128) to
// the dummy interface berth-ipvs0, which the backend creates when missing
// and leaves down (its addresses are local all the same), so that their
// traffic is delivered locally, where IPVS takes it. Addresses no longer
// needed are removed from it; no other interface is ever changed.
//
// # Ownership
//
// A virtual service of the kernel is berth's when it has an address (it is
// not a firewall-mark service), is of the backend's family, its address is
// in none of Config.ExcludeCIDRs, and one of these holds:
//
//  1. its address is assigned to berth-ipvs0; or
//  2. its address is one of the node-port addresses of the last full sync
//     and its port is in Config.NodePortRange (the apiserver's node-port
//     range, 30000-32767 by default); or
//  3. this process created or reconciled it (so that it is found again
//     after its address left the node).
//
// A full sync deletes the virtual services it owns and no longer wants;
// any other virtual service is left alone, but for one at an address and
// port the State asks for, which it takes over. Do not put services of
// your own on berth-ipvs0's addresses, or on node addresses in the
// node-port range. (A node-port service left on an address the node no
// longer has, by an earlier berth, is not found again: it takes no traffic.)
//
// # Reconciling
//
// A full sync (changed == nil: the proxier asks one first, after a
// failure, hourly and when the node-wide settings change) reads the kernel's virtual services, the
// destinations of the ones it wants and the dummy interface's addresses,
// and changes only what differs: a second full sync of the same State
// makes no change. A partial sync touches the virtual services of the
// changed service ports only, and trusts its memory of what it
// programmed: destinations are read back only when they must change. A
// virtual service whose programming fails does not stop the others; the
// failures are returned together, and the next sync is full. Until a full
// sync succeeds again (after a failed sync, or a failed check of the
// draining destinations), a partial one is refused with
// proxy.ErrFullSyncRequired.
//
// # Graceful termination
//
// A destination no longer in the State is not deleted at once: it gets
// weight 0, takes no new connection, and is deleted when its active and
// inactive connections are gone, or when Config.GracePeriod (15 minutes by
// default) has passed. Each sync and Run (every Config.CheckInterval,
// with the injected clock) check the draining ones. UDP destinations are
// deleted at once, as by kube-proxy: expire_nodest_conn=1 ends their
// flows. A draining destination that comes back gets its weight back. A
// whole virtual service is deleted at once, with its connections. After a
// restart, berth finds the weight-0 destinations it does not want and
// drains them anew, with a new grace period.
//
// # iptables
//
// RenderRules writes the rules IPVS mode needs, one iptables-restore
// --noflush input per table, applied atomically with the binaries of the
// iptables backend the node uses, through the lower layer the iptables
// backend uses too (netrules/xtables). The chains start with BERTH-IPVS- and
// are all declared (flushed) and rewritten by each full sync; a partial
// sync restores a table only when its rules changed. HookRules jumps to
// them from PREROUTING, OUTPUT and POSTROUTING (nat) and INPUT and
// FORWARD (filter). Rules match each virtual address and port, since
// ipsets are not assumed. (The iptables backend touches only the chains it
// names itself, so these outlive a switch of the node to iptables mode:
// the switch needs them and their jumps removed.)
//
//	nat BERTH-IPVS-SERVICES      per address and port: masquerade marks, then
//	                             ACCEPT (no later nat rule rewrites IPVS
//	                             traffic); last, jumps to BERTH-IPVS-NODEPORTS
//	                             for each node-port address
//	nat BERTH-IPVS-NODEPORTS     masquerade marks of node ports
//	nat BERTH-IPVS-POSTROUTING   hairpin (a local endpoint reaching itself),
//	                             then MASQUERADE of what carries the mark
//	nat BERTH-IPVS-MARK-MASQ     sets the mark (bit 14, 0x4000, by default)
//	nat BERTH-IPVS-MARK-OFFCLUSTER  marks what comes from no cluster CIDR
//	filter BERTH-IPVS-INPUT      runs the four below, the refusals for new
//	                             connections only
//	filter BERTH-IPVS-FIREWALL   loadBalancerSourceRanges: DROP the rest
//	filter BERTH-IPVS-SERVICES   REJECT what has no endpoints; DROP what has
//	                             no local endpoint (externalTrafficPolicy Local)
//	filter BERTH-IPVS-NODEPORTS  ACCEPT node ports and health-check node ports
//	filter BERTH-IPVS-FILTER     REJECT new connections to berth-ipvs0's
//	                             addresses on ports no service uses (a host
//	                             process listening on all addresses is not
//	                             reachable through a service IP)
//	filter BERTH-IPVS-FORWARD    ACCEPT marked and established traffic
//
// Masquerade: cluster-IP traffic from outside the cluster CIDRs (all of it
// with masqueradeAll; without cluster CIDRs, the node's own connections,
// whose source is the cluster IP itself); external traffic for
// externalTrafficPolicy Cluster; for Local, only the node's own
// connections. IPVS forwards after filter INPUT, so the filter rules see
// the virtual address; net.ipv4.vs.conntrack=1 lets nat POSTROUTING see
// IPVS's connections.
//
// # Kernel
//
// Sync fails with ErrNoIPVS when /proc/net/ip_vs is missing, and sets the
// kernel parameters IPVS mode needs (see setup.go for why each): vs/
// conntrack, expire_nodest_conn, expire_quiescent_template, ip_forward,
// bridge-nf-call-ip(6)tables when br_netfilter is loaded, conn_reuse_mode=0
// on kernels before 5.9 only (as kube-proxy), arp_ignore/arp_announce with
// StrictARP.
//
// netrules/ipvs/testing holds a fake Handle that keeps virtual services,
// destinations and connection counters and schedules connections, a fake
// Links, and a tracer that walks a packet through the fake iptables and
// the fake IPVS.
package ipvs
