package conformance

// References of the images Build produces: those of
// k8s.io/kubernetes/test/utils/image/manifest.go at v1.37.2 with the
// default registries, and kubeadm v1.37's CoreDNS. TestRefsMatchUpstream
// checks them against that file.
const (
	// AgnhostRef is imageutils.Agnhost.
	AgnhostRef = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
	// AgnhostPrevRef is imageutils.AgnhostPrev: the Pods lifecycle test
	// swaps it for AgnhostRef. Same content, another tag.
	AgnhostPrevRef = "registry.k8s.io/e2e-test-images/agnhost:2.55"
	// BusyboxRef is imageutils.BusyBox.
	BusyboxRef = "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"
	// PauseRef is imageutils.Pause (GetPauseImageName).
	PauseRef = "registry.k8s.io/pause:3.10.2"
	// NginxRef is imageutils.Nginx.
	NginxRef = "registry.k8s.io/e2e-test-images/nginx:1.27.0-2"
	// GlibcDNSTestingRef is imageutils.GlibcDnsTesting, the DNS tests'
	// glibc prober (formerly jessie-dnsutils).
	GlibcDNSTestingRef = "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1"
	// NonewprivsRef is imageutils.Nonewprivs.
	NonewprivsRef = "registry.k8s.io/e2e-test-images/nonewprivs:1.4"
	// NonRootRef is imageutils.NonRoot.
	NonRootRef = "registry.k8s.io/e2e-test-images/nonroot:1.5"
	// KittenRef is imageutils.Kitten, mounted as an image volume.
	KittenRef = "registry.k8s.io/e2e-test-images/kitten:1.8"
	// CoreDNSRef is the image kubeadm v1.37 deploys (CoreDNSVersion).
	CoreDNSRef = "registry.k8s.io/coredns/coredns:v1.14.6"
)
