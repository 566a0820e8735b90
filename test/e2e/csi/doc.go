// Package csi tests berth's CSI node side end to end: upstream's mock CSI
// driver (csimock, from test/tools/build-plugins.sh) runs on a berth node
// and registers through plugin registration; statically provisioned CSI
// PersistentVolumes bound through claims are staged and published for pods
// and cleaned up after them, also across a kill -9 of berth; a driver that
// fails or hangs in NodePublishVolume holds only its own pod; a driver that
// needs attaching waits for the VolumeAttachment, with the test playing the
// external attacher.
//
// Run as root on the test bed, with BERTH_PLUGINS_DIR set (see the README).
package csi
