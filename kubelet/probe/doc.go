// Package probe runs the kubelet's container probes and the network half of
// its lifecycle hooks: one small function per handler kind (exec through
// CRI ExecSync, httpGet, tcpSocket, grpc), each returning a Result and the
// output that explains it.
//
// The functions only run one probe. When to probe, thresholds and what a
// result does to a container are kubelet/prober's business.
//
// A Result of Warning counts as a success (an HTTP redirect to another host,
// which the kubelet does not follow). An error means the probe could not be
// run at all; the caller counts it as a failure and says "errored".
package probe
