// Command berth is a Kubernetes node agent for Linux workers: one daemon that
// replaces kubelet and kube-proxy. It joins a kubeadm cluster, runs pods
// through the CRI on containerd and programs Service rules with iptables or
// IPVS.
//
// Usage:
//
//	berth run --config FILE [--check] [-v N] [-vmodule SPEC]
//	berth kubelet [kubelet flags]      (also: berth installed as "kubelet")
//	berth image load FILE.tar...
//	berth rules explain NAMESPACE/SERVICE[:PORT] [--family 4|6]
//	berth rbac
//	berth version
//
// main only wires the process to the outside world: it turns SIGINT and
// SIGTERM into context cancellation, hands the arguments and output streams to
// run, and exits with the code run returns. Everything below main reports
// failures as errors; nothing else exits the process.
//
// Exit codes: 0 on success, 1 when the running agent fails, 2 for a bad
// command line or an invalid configuration.
package main
