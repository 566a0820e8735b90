// Package health serves the kubelet's local health endpoint, plain HTTP
// /healthz on 127.0.0.1:10248 by default: `kubeadm join` waits on it, and
// systemd or an operator may probe it. It answers 200 "ok" only while every
// check passes (the node is registered, the pod loop runs).
package health
