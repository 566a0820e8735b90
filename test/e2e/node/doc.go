// Package node holds the end-to-end tests of berth's kubelet part on the
// test bed: a real `kubeadm join` with berth as the node agent, node status
// and lease, and pods run through containerd.
package node
