// Package podresources serves the kubelet's pod resources API
// (k8s.io/kubelet/pkg/apis/podresources/v1, the PodResourcesLister service)
// on <root>/pod-resources/kubelet.sock: which devices each container of the
// node's active pods holds (List, Get), and which devices the node can
// give (GetAllocatableResources). Monitoring agents (GPU exporters, the
// SR-IOV and topology-aware schedulers' agents) read it.
//
// berth has no CPU manager, memory manager or dynamic resource allocation:
// the answers' CPU IDs, memory blocks and dynamic resources are always
// empty, as under a kubelet with the "none" CPU and memory policies.
package podresources
