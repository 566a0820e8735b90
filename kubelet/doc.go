// Package kubelet holds berth's node agent: the kubelet's job of joining the
// cluster, keeping the Node and its Lease current, and running the node's
// pods through CRI. Each loop or concern is a package of its own below this
// one (node status and lease; the pod controller and its runtime side,
// pod status, prober and relister; probes, volumes, bootstrap, the kubelet
// API server).
package kubelet
