// Package resize is the node's part of in-place pod resize, cut into the
// decisions the kubelet makes (its allocation manager, computePodResizeAction
// and doPodResizeAction, and the resize conditions of its status manager):
//
//   - A pod's spec resources may change while it runs (the API's resize
//     subresource). The node first allocates the new resources, or keeps
//     the old ones: Fit says whether the pod still fits the node's
//     allocatable CPU and memory beside what the other pods were given.
//     A pod that cannot fit even an empty node is Infeasible; one that does
//     not fit now is Deferred and tried again when others give room back.
//     Either shows as the PodResizePending condition.
//   - What was allocated, and what each running container was actually
//     given when that differs, are kept in a Record per pod (Store writes it
//     atomically beside the pod's other files), so that a restarted berth
//     neither forgets an admitted resize nor takes an unapplied one for done.
//   - Plan turns allocated-but-not-actuated resources into steps: containers
//     whose resizePolicy asks for a restart are restarted; the others get
//     their cgroups updated through CRI, memory before CPU, decreases before
//     increases, and the pod cgroup (PodCgroup) grows before and shrinks
//     after its containers, so that a child never needs more than its
//     parent allows. PodResizeInProgress shows while actual differs from
//     allocated, with reason Error when a step failed.
//
// Everything here but Store and the cgroup files is pure.
package resize
