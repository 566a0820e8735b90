// Package imageload imports image tarballs into containerd, for nodes that
// cannot pull: `berth image load FILE.tar` and, at start-up, berth's own
// sandbox image (see cri/pause) when the runtime does not have one.
//
// CRI has no call to import an archive, so this is the one place berth talks
// to containerd directly, with its Go client, in the namespace CRI serves
// (k8s.io). An image is imported and then unpacked into the snapshotter CRI
// creates containers from, so that a pod can use it at once. The image is not
// labelled for CRI: containerd's CRI plugin adopts every image of its
// namespace itself, on image events and, at its start, those already there
// (it labels the image io.cri-containerd.image=managed and adds its sha256 ID
// reference; setting the label here would make it skip the ID reference).
package imageload
