// Package pods is the pod controller: it runs the pods bound to this node,
// as the kubelet's pod workers do, and wires the packages that do the
// rest: kubelet/podruntime (the work on CRI), kubelet/podstatus (the status
// to publish), kubelet/prober (probe workers) and kubelet/relist (the PLEG).
//
// The shape of one pod's life:
//
//   - An informer watches the pods with spec.nodeName equal to this node. Each
//     pod gets a worker goroutine of its own; a pod's work is serialized in its
//     worker, and pods never wait for each other.
//   - A pod new to the manager is admitted first, once and for good, as the
//     kubelet's canAdmitPod does: beyond maxPods running pods, or for a
//     node selector or affinity on kubernetes.io/os other than linux, it is
//     rejected (phase Failed, reason OutOfpods or NodeAffinity, an event)
//     and never started. A pod being stopped holds its place until it has
//     stopped. After a restart the pods are admitted oldest first.
//   - Static pods come from a StaticPodSource (kubelet/staticpods reads the
//     manifest directory) and run like the others. The API shows each as a
//     mirror pod, owned by the Node, that the manager creates, keeps, gets
//     the status, and deletes with the static pod; a mirror pod someone
//     deleted is made again, and mirror pods of no static pod are deleted.
//     Mirror pods from the informer are never run themselves. A new version
//     of a static pod starts once the old one has stopped.
//   - Every second the relister (kubelet/relist) lists sandboxes and
//     containers from CRI; the manager wakes the worker of every pod whose
//     runtime state changed (a container exited) to a state the worker has
//     not observed itself (not for the sandbox its own sync just started;
//     a change found during a sync waits for the sync's end), and of every
//     pod whose retry or back-off time came. A new pod whose UID the last
//     relist did not find starts its first sync without listing the
//     runtime.
//   - The informer's update that only brings back one of a worker's own
//     last two status patches does not wake it (sent.go); its next status
//     is computed against the newest the server holds (the last patch's
//     answer until its echo comes).
//   - A worker observes the pod's runtime state, asks the pure
//     podruntime.ComputePodActions what to do (create the sandbox, start the
//     next init container, start or kill containers, stop the pod), has its
//     podruntime.Pod do it, and patches the status podstatus.Build computes
//     to the API server when it changed. The worker gets what it needs from
//     the node in a workerDeps shared by all workers, and asks the manager
//     (which alone sees every pod) through the workerHost interface.
//   - Every probe of a running container (regular or sidecar) has a probe
//     worker of its own (kubelet/prober). A probe that gives up has the pod
//     worker stop the container, and the restart policy and back-off take
//     it from there. postStart hooks run right after a start (a failure
//     stops the container); preStop hooks run before a stop, within the
//     grace period (podruntime).
//   - Ephemeral containers (`kubectl debug`, added through the
//     ephemeralcontainers subresource) start once each in the pod's sandbox,
//     without waiting for initialization, sharing their target container's
//     process namespace when they name one; they are never restarted, report
//     in ephemeralContainerStatuses and stop with the pod (podruntime).
//   - A pod active on the node for its spec.activeDeadlineSeconds (the
//     field may be lowered on a running pod) is stopped within its grace
//     period and ends Failed with reason DeadlineExceeded and an event, as
//     under the kubelet; its worker wakes when the deadline comes
//     (deadline.go).
//   - A pod with a deletionTimestamp is stopped within its grace period, its
//     sandbox and volumes are removed, and the pod object is deleted for good;
//     sandboxes whose pod is gone from the API are removed as well.
//
// Containers are labelled the way the kubelet labels them
// (io.kubernetes.pod.uid, io.kubernetes.container.name, ...), so crictl shows
// them as usual and a restarted berth adopts what is already running instead
// of restarting it.
package pods
