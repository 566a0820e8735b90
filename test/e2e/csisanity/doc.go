// Package csisanity checks csimock, the small main that serves upstream's
// mock CSI driver on a node (test/tools/plugins/csimock), before the CSI
// end-to-end tests rely on it: upstream's csi-sanity
// (github.com/kubernetes-csi/csi-test/v5) runs against it, and the test
// checks what csimock adds to the mock: the plugin registration answer,
// real bind mounts whose data outlives a pod, the record of calls, fault
// injection through the control folder, and a clean shutdown.
//
// It needs no test bed, only root (the bind mounts) and the plugin binaries
// ($BERTH_PLUGINS_DIR, see test/tools/build-plugins.sh); as non-root it
// skips.
package csisanity
