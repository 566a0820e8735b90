// Package testing holds a fake iptables that keeps its rules in memory
// (parsing iptables-restore input as strictly as the real one), a packet
// tracer over those rules, sample proxy states, and the contract suite that
// the iptables backend must pass against the fake and against the kernel.
// Import it as iptablestesting.
package testing
