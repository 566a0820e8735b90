// Package relist is berth's pod lifecycle event generator (the kubelet's
// PLEG): it lists the sandboxes and containers of the container runtime
// through CRI and tells which pods' runtime state changed since the last
// list (a container exited, a sandbox went away).
//
// It only observes. The pod controller (kubelet/pods) calls Relist once a
// second and wakes the workers of the pods it names; Healthy tells whether
// that loop still runs, as the kubelet's PLEG health check does.
//
// A pod's state is summed up as a fingerprint of the IDs and states of its
// sandboxes and containers, found by the io.kubernetes.pod.uid label; a
// change of the fingerprint is a change of the pod. Containers and
// sandboxes without that label are not berth's and are ignored. The
// fingerprint is exported (Fingerprint, SandboxPart, ContainerPart,
// Result.Prints) so that a pod worker can sum up what its own sync observed
// the same way and be woken only for what it has not seen; Found spares a
// new pod's first sync a list of the runtime.
package relist
