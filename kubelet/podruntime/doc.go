// Package podruntime is the runtime side of a pod, the part of the
// kubelet's runtime manager that speaks CRI and nothing else: it needs no
// API server.
//
//   - Observe reads what CRI runs for one pod (its sandboxes and containers,
//     newest first) into a PodState.
//   - ComputePodActions is the pure decision of what to do next: create the
//     sandbox, start the next init container (or sidecar), start or kill
//     containers, start ephemeral containers, stop the pod, or nothing. It
//     follows the restart policy and asks a RestartGate for crash-loop
//     back-off.
//   - SandboxConfig and ContainerConfig build the CRI configurations:
//     labels and annotations as the kubelet sets them (crictl shows berth's
//     pods as usual and a restarted berth adopts what runs), hostname,
//     DNS (DNSConfig, ParseResolvConf), ports, namespaces, security
//     contexts, QoS class and cgroup parent, resources and OOM score,
//     environment (MakeEnv, with $(VAR) expansion), mounts, termination
//     message files and /etc/hosts.
//   - Image pull policy, default tags and pull-secret credentials; grace
//     periods; the waiting reasons of containers that cannot start.
//
// The objects a container refers to (ConfigMaps and Secrets) are read
// through the narrow Objects interface. Tests run on the CRI fake of
// k8s.io/cri-api and build states with podruntimetest.
package podruntime
