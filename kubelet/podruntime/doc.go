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
//     DNS from the dnsPolicy and the node's resolv.conf, ports, namespaces,
//     security contexts, QoS class and cgroup parent, resources and OOM
//     score, environment (with $(VAR) expansion), mounts, termination
//     message files and /etc/hosts.
//   - A Runner (one per node) carries the actions out; its per-pod side, a
//     Pod, remembers between syncs what the pod worker needs: the
//     crash-loop and image pull back-offs (client-go flowcontrol.Backoff)
//     and why containers wait. Pod.Apply makes the sandbox (a few at a
//     time), starts ephemeral, init and regular containers (image pull
//     under the pull policy with the pod's pull secrets, runAsNonRoot
//     check, create, start, postStart hook) and kills what must go;
//     KillPod and StopContainer stop containers within their grace period
//     after their preStop hook; RemoveAll and CollectGarbage remove what
//     is left.
//   - Image pull policy, default tags and pull-secret credentials; grace
//     periods; the waiting reasons of containers that cannot start.
//
// The objects a container refers to (ConfigMaps and Secrets) are read
// through the narrow Objects interface and RuntimeClasses through a
// RuntimeClassesGetter: the package holds no API client, and its tests
// need no API server. They run on the CRI fakes of k8s.io/cri-api
// (podruntimetest adds an image service that fails on demand and an event
// recorder) and build states with podruntimetest.
package podruntime
