// Package csisanity checks the plugin binaries the end-to-end tests run on
// nodes (test/tools/build-plugins.sh) before those tests rely on them:
//   - csimock, the small main that serves upstream's mock CSI driver on a
//     node: upstream's csi-sanity (github.com/kubernetes-csi/csi-test/v5)
//     runs against it, and the tests check what csimock adds to the mock:
//     the plugin registration answer, real bind mounts whose data outlives
//     a pod, volume stats, the record of calls, fault injection through the
//     control folder, a restart, and a clean shutdown;
//   - devicemock, upstream's device plugin stub with unhealthy devices and
//     environment variables: its registration, devices and allocations,
//     against a fake kubelet socket.
//
// It needs no test bed, only root (the bind mounts; the plugins run as root
// on a node) and the plugin binaries ($BERTH_PLUGINS_DIR); as non-root it
// skips.
package csisanity
