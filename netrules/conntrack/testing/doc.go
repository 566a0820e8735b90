// Package testing holds a fake conntrack table that keeps UDP flows and
// clears them as the kernel does, and the contract suite that the fake and
// conntrack.Cleaner (as root, in a network namespace of the test's own) must
// both pass. Import it as conntracktesting.
package testing
