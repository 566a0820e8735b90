// Package staticpods reads static pod manifests: the pods a node runs from
// files in a local directory (the kubelet's staticPodPath, which kubeadm sets
// to /etc/kubernetes/manifests) instead of from the API server.
//
// The rules are the kubelet's:
//
//   - Every regular, non-hidden file ending in .yaml, .yml or .json holds one
//     v1 Pod. Subdirectories are not read. A manifest that cannot be read,
//     parsed or validated is logged, naming the file, and skipped; the
//     others are unaffected.
//   - The pod is defaulted the way the API server defaults pods, named
//     <name>-<nodeName>, put in namespace default when it names none, bound
//     to the node, and tolerates every NoExecute taint.
//   - Its UID is a hash of the node name, the file's path and the defaulted
//     pod, so it is the same on every read and after a restart (the
//     containers a previous run started are adopted), and a changed manifest
//     is a new pod. A UID written in the manifest is ignored.
//   - Annotations kubernetes.io/config.source (file), kubernetes.io/config.hash
//     (the UID) and kubernetes.io/config.seen (when the manifest was first
//     read) tell the pod's origin; the pod manager copies them to the mirror
//     pod it creates in the API server.
//
// The directory is read at start and every FileCheckFrequency; a missing
// directory holds no pods.
package staticpods
