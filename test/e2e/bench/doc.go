// Package bench holds the node benchmarks (`make bench`) on the test bed:
// one node runs berth, the other the upstream kubelet v1.37.2 with
// kube-proxy, joined to the same control plane, and every benchmark that
// compares them runs both in the same run. Besides times they count what
// each node agent costs the others: CPU of every process on the node
// (agent, containerd and CNI plugins, shims and runc) and of the
// kube-apiserver, the CRI calls the agent made, and the API requests it sent,
// per pod.
package bench
