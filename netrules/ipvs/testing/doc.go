// Package testing holds fakes for the IPVS backend that keep state: Fake,
// an IPVS table (services, destinations, connection counters tests set,
// connections scheduled as rr does); FakeLinks, the node's interfaces and
// the dummy interface's addresses; and Node, which puts them together with
// the fake iptables of netrules/iptables/testing, a fake clock and a /proc
// of its own, and traces packets through iptables and IPVS. Import it as
// ipvstesting.
package testing
