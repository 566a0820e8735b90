// Package kubeletapi tests berth's kubelet API end to end: kubectl logs,
// exec, attach and port-forward through the test bed's apiserver to berth's
// :10250 and on to containerd's streaming server; node and pod stats;
// container log rotation under a fast writer while `kubectl logs -f`
// reads; and that :10250 refuses every request without valid credentials
// or permission.
//
// The bed's cluster is configured, before the nodes join, with small log
// limits (containerLogMaxSize 5Mi, containerLogMaxFiles 3, checked every
// 3 s), so that the rotation test rotates many times.
package kubeletapi
