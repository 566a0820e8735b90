// Package testing holds a fake iptables that keeps its rules in memory
// (parsing iptables-restore input as strictly as the real one), a packet
// tracer over those rules (whose results Result.Outcome gives in
// proxytest's words, for the behaviour table of proxy/proxytest), and the
// contract suite that the iptables backend must pass against the fake and
// against the kernel. The example states are proxytest's.
// Import it as iptablestesting.
package testing
