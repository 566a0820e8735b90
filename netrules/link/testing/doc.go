// Package testing holds a fake link.Routes that keeps state like a routing
// table does, and the contract suite that the fake and the kernel
// implementation must both pass. Import it as linktesting.
package testing
