// Package server serves the kubelet API, the HTTPS endpoint on :10250 that
// the API server, metrics-server and operators reach: /pods, /healthz,
// /configz, /stats/ and /metrics/resource, /metrics, /containerLogs/, and
// the streams of exec, attach and port forwarding. The endpoints themselves
// are http.Handlers of other packages; this one puts kubelet's security in
// front of them.
//
// Authentication is kubelet's: a client certificate verified against the
// configured client CA (user = common name, groups = organizations), else a
// bearer token the API server vouches for in a TokenReview, else, only when
// allowed, system:anonymous. Authorization asks the API server with a
// SubjectAccessReview about nodes/<node> with a subresource that follows the
// path (stats, metrics, log; pods, healthz and configz with proxy as a
// fallback; proxy for the rest), as kubelet's fine-grained authorization
// does. Token reviews and access decisions are cached for the configured
// TTLs. The code is small and written on client-go alone: k8s.io/apiserver
// would weigh on the binary and its memory for the little used here.
//
// The serving certificate is self-signed and generated once in the
// certificate directory (kubelet.crt, kubelet.key), or read from the
// configured files, or, with serverTLSBootstrap, requested with a
// kubernetes.io/kubelet-serving CSR and renewed before it expires
// (kubelet-server-current.pem). kube-controller-manager does not approve
// serving CSRs: until one is approved the server has no certificate and
// refuses handshakes, and says so in its log.
package server
