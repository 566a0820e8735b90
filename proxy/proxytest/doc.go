// Package proxytest holds the behaviour every proxy backend must have,
// written without any backend's vocabulary: an example network and State
// (network.go), a table of packets sent into that state with the outcome
// each must have (table.go: which endpoints, how new connections spread
// over them, masqueraded or not, dropped or rejected), and Run, which plays
// the table against a backend through a Tracer (run.go).
//
// A backend's tests implement Tracer over their own fake (the iptables
// fake's packet tracer, the IPVS fake's node, ...) and call
//
//	proxytest.Run(t, newTracer, proxytest.Except{
//		"case name": "why this backend cannot have this behaviour",
//	})
//
// Through the kernel (as root), a backend's test gives RunKernel a
// constructor of the backend programming a node namespace; RunKernel builds
// a namespace per client and endpoint around it, makes real connections
// and reads the outcome from the endpoints' answers (kernel_linux.go;
// NewNetns is the namespace helper the backends' kernel tests share).
//
// A behaviour a backend cannot have is listed there, by name, with the
// reason: Run logs it with its reason instead of playing it, and fails on a name the table does not
// have, so that the list cannot go stale silently.
package proxytest
