// Package podstatus computes the status a pod worker publishes, as the
// kubelet's status manager and generateAPIPodStatus do: a pure function
// (Build) of the pod, what the runtime runs for it (podruntime.PodState),
// why its containers wait, what the probes found, and the clock.
//
//   - the phase (Pending, Running, Succeeded, Failed) from the restart
//     policy and the containers' states, init containers and sidecars
//     included;
//   - the conditions PodReadyToStartContainers, Initialized,
//     ContainersReady and Ready (readiness gates included), keeping the
//     transition time of a condition that did not change and the
//     conditions others own (PodScheduled, resize, foreign ones);
//   - container statuses of init, regular and ephemeral containers:
//     waiting (with the reason of the last failed start), running (started
//     and ready as the probes say), terminated (exit code, reason,
//     termination message), restart counts, image IDs, resources;
//   - pod and host IPs, QoS class and start time.
//
// Ended turns a status into that of a pod the node ended (phase Failed with
// a reason, as for an exceeded active deadline).
package podstatus
