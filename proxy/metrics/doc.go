// Package metrics holds the service proxy's Prometheus metrics, named as
// kube-proxy's so that existing dashboards and alerts keep working, on a
// private registry, and the server that exposes them.
package metrics
