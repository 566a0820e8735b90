// Command csimock serves upstream's mock CSI driver (the one Kubernetes' own
// CSI e2e tests embed: k8s.io/kubernetes/test/e2e/storage/drivers/csi-test)
// on a node, together with the plugin registration answer that
// node-driver-registrar gives kubelet, so that a node agent finds, registers
// and drives it like a real CSI driver. Around the mock it adds what the
// end-to-end tests need: a record of every call, fault injection and real
// bind mounts.
//
// Usage (as root on the node; the paths are kubelet's):
//
//	csimock --name csi-mock.berth.test --node-id node-1 \
//	    --endpoint /var/lib/kubelet/plugins/csi-mock.berth.test/csi.sock \
//	    --registration-socket /var/lib/kubelet/plugins_registry/csi-mock.berth.test-reg.sock \
//	    --control-dir /var/lib/csimock/csi-mock.berth.test \
//	    [--state-dir DIR] [--topology KEY=VALUE]... [--volumes N] \
//	    [--attach-required] [--node-expand=false] [--attach-limit N]
//
// Flags:
//   - --name: the driver name (GetPluginInfo, GetInfo, CSINode).
//   - --node-id: NodeGetInfo's node ID (default: the host name).
//   - --topology KEY=VALUE (repeatable): NodeGetInfo's accessible topology.
//   - --endpoint: the CSI socket; --registration-socket: the
//     pluginregistration/v1 socket (GetInfo answers type "CSIPlugin", the
//     name, the endpoint and versions ["1.0.0"]).
//   - --volumes N: the mock knows the volume IDs "1" to "N" (default 3, the
//     mock's own three); a statically provisioned PV's volumeHandle must be
//     one of them. Inline ephemeral volumes take any ID.
//   - --attach-required: NodeStage/NodePublish need publish context "device"
//     (from a VolumeAttachment's attachmentMetadata) and the controller
//     advertises PUBLISH_UNPUBLISH_VOLUME; default off.
//   - --node-expand: advertise the node's EXPAND_VOLUME capability (default on).
//
// The control directory (--control-dir):
//   - calls.jsonl: one JSON line per CSI call, appended when the call returns:
//     {"time":"<RFC 3339, call start>","method":"NodePublishVolume",
//     "volume_id":"1","staging_target_path":"...","target_path":"...",
//     "volume_path":"...","code":"OK","error":"","duration_ms":0.42}
//     (code is the gRPC code name; empty strings are left out).
//   - registration.jsonl: one JSON line per registration call:
//     {"time":"...","method":"GetInfo"} and {"time":"...",
//     "method":"NotifyRegistrationStatus","plugin_registered":true,"error":""}.
//   - <Method>.fail (e.g. NodePublishVolume.fail): while it exists, calls to
//     Method fail with code Internal and the file's content as message.
//   - <Method>.hang: while it exists, calls to Method block until it is
//     removed (then they proceed) or the caller's deadline ends.
//   - volumes/<volume_id>: the default state directory (--state-dir).
//
// Mounts: for mount-mode volumes, NodeStageVolume bind-mounts the volume's
// backing directory <state-dir>/<volume_id> onto the staging path,
// NodePublishVolume bind-mounts the staging path (the backing directory when
// the call has no staging path) onto the target path, read-only when asked;
// NodeUnpublishVolume and NodeUnstageVolume unmount, and unpublish removes the
// target directory. Data stays in the backing directory across pods and
// restarts. Inline ephemeral volumes (volume context
// csi.storage.k8s.io/ephemeral=true, no staging) are bind-mounted from
// their backing directory, which unpublish removes. NodeGetVolumeStats
// answers the statfs of the volume path (bytes and inodes). Block volumes
// get the mock's own behaviour only.
//
// SIGTERM or SIGINT stops both servers and removes both sockets.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"k8s.io/klog/v2"
)

// topologyFlag collects repeated --topology KEY=VALUE flags.
type topologyFlag map[string]string

// String prints the segments as KEY=VALUE,KEY=VALUE.
func (t topologyFlag) String() string {
	var parts []string
	for k, v := range t {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

// Set adds one KEY=VALUE segment.
func (t topologyFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("topology %q: want KEY=VALUE", s)
	}
	t[k] = v
	return nil
}

func main() {
	klog.InitFlags(nil)
	cfg := Config{Topology: topologyFlag{}}
	host, _ := os.Hostname()
	flag.StringVar(&cfg.Name, "name", "", "CSI driver name")
	flag.StringVar(&cfg.NodeID, "node-id", host, "node ID NodeGetInfo returns")
	flag.Var(topologyFlag(cfg.Topology), "topology", "KEY=VALUE segment of NodeGetInfo's accessible topology (repeatable)")
	flag.StringVar(&cfg.Endpoint, "endpoint", "", "path of the CSI Unix socket")
	flag.StringVar(&cfg.RegistrationSocket, "registration-socket", "", "path of the plugin registration Unix socket (none if empty)")
	flag.StringVar(&cfg.ControlDir, "control-dir", "", "directory of calls.jsonl, registration.jsonl and <Method>.fail/.hang files")
	flag.StringVar(&cfg.StateDir, "state-dir", "", "directory of the volumes' backing directories (default <control-dir>/volumes)")
	flag.IntVar(&cfg.Volumes, "volumes", 3, "number of volumes the mock knows, with IDs 1..N")
	flag.BoolVar(&cfg.AttachRequired, "attach-required", false, "require publish context \"device\" and advertise controller publish")
	flag.BoolVar(&cfg.NodeExpand, "node-expand", true, "advertise the node EXPAND_VOLUME capability")
	flag.Int64Var(&cfg.AttachLimit, "attach-limit", 0, "NodeGetInfo's max volumes per node (0: none)")
	flag.Parse()
	if cfg.StateDir == "" && cfg.ControlDir != "" {
		cfg.StateDir = filepath.Join(cfg.ControlDir, "volumes")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger := klog.Background().WithName("csimock")
	ctx = klog.NewContext(ctx, logger)
	if err := run(ctx, cfg); err != nil {
		logger.Error(err, "csimock failed")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}
