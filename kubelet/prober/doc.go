// Package prober runs the liveness, readiness and startup probes of a
// pod's running containers, as the kubelet's prober manager does; package
// kubelet/probe runs a single probe.
//
// Every probe of a running container (regular or sidecar) has a worker
// goroutine of its own on the injected clock: the first probe once the
// initial delay has passed (plus a random part of the period right after
// berth starts, so that the probes of adopted containers do not all fire
// at once), then one per period; a result counts once it came
// successThreshold (or failureThreshold) times in a row.
//
//   - The startup probe holds the others back until it succeeds.
//   - Readiness sets the container's ready flag (Health), and so the pod's
//     Ready condition; the pod worker is woken to publish it.
//   - A liveness or startup probe that gives up asks the pod worker to stop
//     the container (Kill, with the probe's or the pod's grace period); the
//     restart policy and back-off take it from there, and the next instance
//     gets new probe workers.
//
// The pod worker owns one Pod per pod: it calls Sync after every sync of
// the pod, StopAll when nothing of the pod may run any more, and reads
// Health and TakeKills.
package prober
