// Package node keeps this node's Node object and Lease current, as the
// kubelet's node status manager does: it registers the Node (labels,
// taints, addresses, nodeInfo, capacity and allocatable), computes its
// conditions from the machine and the runtime (Ready, MemoryPressure,
// DiskPressure, PIDPressure), posts the status when it changes and at least
// every NodeStatusReportFrequency, and renews the node's Lease in
// kube-node-lease every quarter of its duration.
package node
