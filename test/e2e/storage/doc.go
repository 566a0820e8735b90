// Package storage holds the end-to-end tests of PersistentVolumeClaims on a
// berth node: a StatefulSet keeping its data on a local PersistentVolume
// across a new pod, a claim that never binds (the pod waits with a
// FailedMount event, the node keeps running other pods, and the pod starts
// once the claim binds), a generic ephemeral volume, and the pod's fsGroup
// on a local volume's files.
package storage
