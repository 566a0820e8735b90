// Package volume sets up the volumes of the node's pods: it makes each
// volume of a pod available on the host and tells the pod workers which host
// path to bind-mount into the pod's containers.
//
// Volumes live where the kubelet keeps them,
// <root>/pods/<pod uid>/volumes/<plugin>/<volume name>, with the kubelet's
// plugin directory names, so that tools that know the kubelet's layout keep
// working. Supported sources are emptyDir (on disk or tmpfs), configMap,
// secret, downwardAPI, projected (serviceAccountToken, configMap, secret,
// downwardAPI), hostPath, csi (inline ephemeral), persistentVolumeClaim and
// ephemeral (generic ephemeral volumes); any other source is reported as
// unsupported.
//
// A claim is used once bound, to a PersistentVolume that points back at
// it; until then Setup fails naming the claim and the pod waits. Local
// PersistentVolumes are bind-mounted into the pod's
// kubernetes.io~local-volume directory, hostPath ones are given as they
// are, and CSI volumes, PersistentVolumes and inline alike, are published
// through the CSI node side (package kubelet/csi) behind the CSI interface.
// Teardown has that node side unpublish CSI volumes before it unmounts and
// removes the rest, and never removes what is below a mount point.
//
// API data (configMap, secret, downwardAPI, projected) is published with
// package atomicwriter, so containers see whole versions only. Secret,
// downwardAPI and projected volumes sit on a tmpfs so that credentials never
// reach the disk. The Manager remembers when each service account token it
// wrote should be renewed; calling Setup again renews due tokens.
package volume
