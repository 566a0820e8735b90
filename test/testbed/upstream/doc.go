// Package upstream makes test bed nodes upstream Kubernetes nodes: the
// upstream kubelet run as kubeadm's systemd unit runs it and joined with
// `kubeadm join`, and the upstream kube-proxy run next to it. It is the
// reference berth is compared with on the same bed: by the conformance
// run (AGENT=upstream) and by the benchmarks.
package upstream
