// Package stream serves the kubelet's streaming endpoints, the ones behind
// `kubectl exec`, `kubectl attach` and `kubectl port-forward`:
//
//	/exec/{podNamespace}/{podID}/{containerName}
//	/exec/{podNamespace}/{podID}/{uid}/{containerName}
//	/attach/{podNamespace}/{podID}/{containerName}
//	/attach/{podNamespace}/{podID}/{uid}/{containerName}
//	/portForward/{podNamespace}/{podID}
//	/portForward/{podNamespace}/{podID}/{uid}
//
// The apiserver upgrades a connection to the kubelet (SPDY/3.1 or
// WebSocket) and expects the streams of the remote command or port-forward
// protocol on it. The container runtime speaks those protocols already: CRI
// Exec, Attach and PortForward hand out a one-time URL of the runtime's
// streaming server. The Handler finds the pod's sandbox and container by the
// kubelet labels berth puts on them (io.kubernetes.pod.namespace, .name,
// .uid, io.kubernetes.container.name), asks the runtime for that URL, and
// proxies the client's upgrade request to it, then the bytes both ways. It
// proxies rather than redirects because containerd's streaming server
// listens on the node's loopback, which the apiserver cannot reach.
//
// The proxy is a small HTTP/1.1 upgrade relay written here instead of
// k8s.io/apimachinery's UpgradeAwareHandler, to keep berth's binary and
// memory small; it needs no knowledge of SPDY or WebSocket framing.
//
// The Handler authenticates and authorizes nobody: the kubelet server mounts
// it behind its own authentication and authorization.
package stream
