// Package pods runs the pods bound to this node through the Container Runtime
// Interface: the kubelet's pod workers, its runtime manager and its status
// manager, cut down to what a worker node needs.
//
// The shape of one pod's life:
//
//   - An informer watches the pods with spec.nodeName equal to this node. Each
//     pod gets a worker goroutine of its own; a pod's work is serialized in its
//     worker, and pods never wait for each other.
//   - A relist loop lists sandboxes and containers from CRI every second and
//     wakes the worker of every pod whose runtime state changed (a container
//     exited), and of every pod whose retry or back-off time came.
//   - A worker observes the pod's runtime state, asks the pure
//     computePodActions what to do (create the sandbox, start the next init
//     container, start or kill containers, stop the pod), does it, and patches
//     the pod status to the API server when it changed.
//   - A pod with a deletionTimestamp is stopped within its grace period, its
//     sandbox and volumes are removed, and the pod object is deleted for good;
//     sandboxes whose pod is gone from the API are removed as well.
//
// Containers are labelled the way the kubelet labels them
// (io.kubernetes.pod.uid, io.kubernetes.container.name, ...), so crictl shows
// them as usual and a restarted berth adopts what is already running instead
// of restarting it.
package pods
