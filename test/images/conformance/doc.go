// Package conformance builds, without a registry, the container images that
// the upstream Kubernetes e2e conformance tests of the node-related
// selection run (agnhost at its current and previous tags, busybox, pause,
// nginx, glibc-dns-testing, nonewprivs, nonroot, kitten) and the CoreDNS
// image a kubeadm cluster runs, under the exact references the e2e binary
// asks for (k8s.io/kubernetes/test/utils/image/manifest.go), as
// docker-archive tars to import into each node's containerd.
//
// The upstream images are Alpine- or Debian-based; these are assembled from
// what this machine can build: Go programs compiled from the same
// Kubernetes release (test/tools/build-e2e-programs.sh), a busybox built
// from Debian's source with upstream's shell behaviour
// (test/tools/busybox/build.sh), and Debian's dig, curl, ip, ss, getent and
// bash copied with the shared libraries they load. Each image holds what the
// selected tests run inside it; the unit tests name those files.
//
// CoreDNSManifest renders the add-on that gives the test bed cluster DNS.
package conformance
