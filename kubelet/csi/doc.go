// Package csi is the node side of the Container Storage Interface: it
// registers CSI drivers found through plugin registration, keeps the node's
// CSINode object, and stages, publishes, unpublishes and unstages CSI
// volumes for pods at the paths the kubelet uses, so that drivers written
// for the kubelet find what they expect.
//
// The Manager is the plugins.Handler of CSI drivers. Register dials the
// driver's endpoint, asks NodeGetCapabilities and NodeGetInfo, and records
// the driver in the CSINode object (created at start, owned by the Node;
// drivers[] with node ID, topology keys and allocatable count), in the
// Node's csi.volume.kubernetes.io/nodeid annotation and as topology labels
// on the Node (metadata patched through nodes/status, as the kubelet does
// with the node's credentials). Deregister removes the driver from the
// CSINode and the annotation; the labels stay, as with the kubelet.
//
// SetUp and TearDown serve the volume manager (kubelet/volume):
//
//   - A persistent volume is staged once per node, when the driver has
//     STAGE_UNSTAGE_VOLUME, at
//     <root>/plugins/kubernetes.io/csi/<driver>/<sha256(handle)>/globalmount,
//     with vol_data.json (volumeHandle, driverName) next to it, and published
//     for each pod at <root>/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount,
//     with vol_data.json (specVolID, volumeHandle, driverName, nodeName,
//     attachmentID, volumeLifecycleMode) in its parent.
//   - An inline ephemeral volume gets the volume ID csi-<sha256(uid+name)> and
//     is published only; its driver's CSIDriver must list Ephemeral.
//   - A volumeMode Block volume uses the kubelet's volumeDevices layout
//     below <root>/plugins/kubernetes.io/csi/volumeDevices (staging/<pv>,
//     publish/<pv>/<uid>, <pv>/data/vol_data.json) and links the pod's
//     volumeDevices entry to the published device.
//   - When the CSIDriver object requires attaching (or there is none), the
//     volume is mounted only once the node status reports it in use, the
//     attach/detach controller lists it in volumesAttached and its
//     VolumeAttachment is attached; the attachment's metadata is the publish
//     context. SetUp does not wait: it returns an error, to be retried.
//   - The CSIDriver's podInfoOnMount adds the pod's information to the
//     volume context; its fsGroupPolicy decides Mounted.ApplyFSGroup (the
//     driver applies the group itself when it has VOLUME_MOUNT_GROUP); its
//     tokenRequests get tokens of the pod's service account, bound to the
//     pod, in the volume context (or the secrets); requiresRepublish calls
//     NodePublishVolume again at every SetUp.
//   - The driver's calls run in the background: a call that has not
//     answered after Config.SetUpWait leaves SetUp with ErrInProgress, so a
//     hanging driver holds neither the pod's worker nor other pods.
//   - When the claim awaits a node resize (NodeResizePending), the file
//     system is expanded with NodeExpandVolume and the claim's status is
//     updated the way the kubelet updates it.
//   - TearDown reads only the disk, so it works after a restart: it
//     unpublishes, removes the pod's directory, and unstages when no other
//     pod's vol_data.json names the volume.
//
// VolumesInUse feeds the node status's volumesInUse with the kubelet's unique
// names (kubernetes.io/csi/<driver>^<handle>) of attachable volumes, and
// VolumeStats the summary's volume statistics and the kubelet_volume_stats_*
// metrics from NodeGetVolumeStats (once a minute per volume at most).
//
// Not done: SELinux mount options, volume health, and, for block volumes,
// the kubelet's loop device and bind mount of the global map path.
package csi
