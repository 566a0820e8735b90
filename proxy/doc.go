// Package proxy holds berth's service proxy: the kube-proxy's job. Informers
// for Services, EndpointSlices and the Node feed change trackers; a
// bounded-frequency runner takes snapshots and calls a pure Compute that
// turns them into a backend-neutral desired state (virtual IP to backends,
// masquerade, reject, node ports), which a netrules backend applies. Nothing
// here touches the kernel.
//
// The Proxier is the loop. Its parts live in sub-packages: runner (the
// bounded-frequency runner), config (kube-proxy's KubeProxyConfiguration),
// healthcheck (/healthz and the health-check node ports) and metrics
// (kube-proxy's Prometheus metrics).
//
// The Proxier alone decides whether a sync is full (the first one, after a
// failure, hourly, when the node-wide settings change) and tells the
// Backend, which does as asked; a backend reports what only it can know
// upward, as an error (ErrFullSyncRequired when it cannot trust its memory
// for a partial sync).
package proxy
