// Package cri is berth's thin client of the Container Runtime Interface: the
// runtime and image services of k8s.io/cri-api over a unix socket. The
// containerd client is used only where CRI cannot do the job (importing an
// image tarball on an air-gapped node).
package cri
