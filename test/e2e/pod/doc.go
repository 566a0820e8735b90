// Package pod holds the end-to-end tests of what runs inside a pod on a
// berth node: volumes (configMap, secret, emptyDir, downwardAPI, the
// service-account token), the environment, probes and lifecycle hooks, and
// ephemeral containers (the subresource, and `kubectl debug -it --target`).
package pod
