// Package testing holds test doubles for package volume: a Mounter that
// keeps its mounts in memory, and a contract suite that any Mounter must
// pass, run against the fake everywhere and against the kernel as root.
package testing
