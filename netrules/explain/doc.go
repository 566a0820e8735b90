// Package explain implements "berth rules explain": it tells, for people,
// what berth's proxy programmed on this node for one service, read back
// from the kernel and trusting no State.
//
// Service reads the nat and filter tables with iptables-save and picks the
// mode they show. In iptables mode (Explain) the balancing is in the
// iptables backend's chains: per service port, its destinations and what
// becomes of new connections to them, the endpoints they take in turn,
// session affinity, masquerade, the traffic policies, the source ranges
// and the health check, each with the chain that holds it. In IPVS mode
// (ExplainIPVS) the rules hold the addresses and policies and the kernel's
// IPVS table the virtual services and their real servers.
//
// It is the one package that knows both backends' chains; it reads them
// with netrules/xtables' parser. What it cannot account for it reports as a
// note rather than leave out.
package explain
