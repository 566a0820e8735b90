package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// nodeServer wraps the mock's node service: the mock keeps the volumes'
// state in memory and only creates and removes the target directory; this
// adds real bind mounts of a per-volume backing directory, and the node ID
// and topology of the flags.
type nodeServer struct {
	csi.NodeServer
	cfg Config
}

// NodeGetInfo answers the mock's reply with the configured node ID and
// topology (the mock answers its driver name and a fixed segment).
func (n *nodeServer) NodeGetInfo(ctx context.Context, req *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	resp, err := n.NodeServer.NodeGetInfo(ctx, req)
	if err != nil {
		return nil, err
	}
	resp.NodeId = n.cfg.NodeID
	resp.AccessibleTopology = nil
	if len(n.cfg.Topology) > 0 {
		resp.AccessibleTopology = &csi.Topology{Segments: n.cfg.Topology}
	}
	return resp, nil
}

// NodeStageVolume lets the mock stage, then bind-mounts the backing
// directory onto the staging path.
func (n *nodeServer) NodeStageVolume(ctx context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	resp, err := n.NodeServer.NodeStageVolume(ctx, req)
	if err != nil || req.GetVolumeCapability().GetMount() == nil {
		return resp, err
	}
	backing, err := n.backingDir(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	if err := bindMount(ctx, backing, req.GetStagingTargetPath(), false); err != nil {
		return nil, status.Errorf(codes.Internal, "stage volume %s: %v", req.GetVolumeId(), err)
	}
	return resp, nil
}

// NodeUnstageVolume unmounts the staging path, then lets the mock unstage.
// The staging directory stays: the caller created it.
func (n *nodeServer) NodeUnstageVolume(ctx context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	if req.GetStagingTargetPath() != "" {
		if err := unmountAll(ctx, req.GetStagingTargetPath()); err != nil {
			return nil, status.Errorf(codes.Internal, "unstage volume %s: %v", req.GetVolumeId(), err)
		}
	}
	return n.NodeServer.NodeUnstageVolume(ctx, req)
}

// NodePublishVolume lets the mock publish (it creates the target
// directory), then bind-mounts the staging path, or the backing directory
// without one, onto the target path.
func (n *nodeServer) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	if req.GetVolumeContext()[ephemeralKey] == "true" {
		return n.publishEphemeral(ctx, req)
	}
	resp, err := n.NodeServer.NodePublishVolume(ctx, req)
	if err != nil || req.GetVolumeCapability().GetMount() == nil {
		return resp, err
	}
	source := req.GetStagingTargetPath()
	if source == "" {
		if source, err = n.backingDir(req.GetVolumeId()); err != nil {
			return nil, err
		}
	}
	if err := bindMount(ctx, source, req.GetTargetPath(), req.GetReadonly()); err != nil {
		return nil, status.Errorf(codes.Internal, "publish volume %s: %v", req.GetVolumeId(), err)
	}
	return resp, nil
}

// NodeUnpublishVolume unmounts the target path before the mock removes it
// (the mock removes it recursively: unmounting first keeps the data), and
// removes the directory when the mock did not know it was published (after
// a restart).
func (n *nodeServer) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	target := req.GetTargetPath()
	if target != "" {
		if err := unmountAll(ctx, target); err != nil {
			return nil, status.Errorf(codes.Internal, "unpublish volume %s: %v", req.GetVolumeId(), err)
		}
	}
	if n.isEphemeral(req.GetVolumeId()) {
		return n.unpublishEphemeral(req)
	}
	resp, err := n.NodeServer.NodeUnpublishVolume(ctx, req)
	if err != nil || target == "" {
		return resp, err
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "unpublish volume %s: remove target: %v", req.GetVolumeId(), err)
	}
	return resp, nil
}

// ephemeralKey is the volume context key kubelet sets for CSI inline
// ephemeral volumes.
const ephemeralKey = "csi.storage.k8s.io/ephemeral"

// publishEphemeral publishes an inline ephemeral volume: its backing
// directory bind-mounted onto the target path, and a marker that tells
// NodeUnpublishVolume, even after a restart, that it is ephemeral. The
// mock's own NodePublishVolume is not called: it dereferences a nil volume
// for ephemeral IDs it does not know.
func (n *nodeServer) publishEphemeral(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, status.Error(codes.InvalidArgument, "Volume ID cannot be empty")
	case req.GetTargetPath() == "":
		return nil, status.Error(codes.InvalidArgument, "Target Path cannot be empty")
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "Volume Capability cannot be empty")
	}
	backing, err := n.backingDir(req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(backing+ephemeralSuffix, nil, 0o644); err != nil {
		return nil, status.Errorf(codes.Internal, "ephemeral volume %s: %v", req.GetVolumeId(), err)
	}
	if req.GetVolumeCapability().GetMount() == nil {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := bindMount(ctx, backing, req.GetTargetPath(), req.GetReadonly()); err != nil {
		return nil, status.Errorf(codes.Internal, "publish ephemeral volume %s: %v", req.GetVolumeId(), err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// ephemeralSuffix names the marker file next to an ephemeral volume's
// backing directory.
const ephemeralSuffix = ".ephemeral"

// isEphemeral tells whether the volume was published as inline ephemeral.
func (n *nodeServer) isEphemeral(volumeID string) bool {
	_, err := os.Stat(n.backingPath(volumeID) + ephemeralSuffix)
	return err == nil
}

// unpublishEphemeral removes the (unmounted) target, the volume's data and
// its marker: an ephemeral volume lives as long as its pod.
func (n *nodeServer) unpublishEphemeral(req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	backing := n.backingPath(req.GetVolumeId())
	if err := os.Remove(req.GetTargetPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "unpublish ephemeral volume %s: %v", req.GetVolumeId(), err)
	}
	for _, p := range []string{backing, backing + ephemeralSuffix} {
		if err := os.RemoveAll(p); err != nil {
			return nil, status.Errorf(codes.Internal, "unpublish ephemeral volume %s: %v", req.GetVolumeId(), err)
		}
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// backingPath returns the path of the volume's backing directory.
func (n *nodeServer) backingPath(volumeID string) string {
	name := url.PathEscape(volumeID)
	if strings.HasPrefix(name, ".") {
		name = "_" + name
	}
	return filepath.Join(n.cfg.StateDir, name)
}

// backingDir makes and returns the volume's backing directory.
func (n *nodeServer) backingDir(volumeID string) (string, error) {
	dir := n.backingPath(volumeID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", status.Errorf(codes.Internal, "volume %s: backing directory: %v", volumeID, err)
	}
	return dir, nil
}

// bindMount bind-mounts source onto target (made if missing) unless target
// is a mount point already.
func bindMount(ctx context.Context, source, target string, readOnly bool) error {
	if err := os.MkdirAll(target, 0o750); err != nil {
		return fmt.Errorf("make %s: %w", target, err)
	}
	mounted, err := isMountPoint(target)
	if err != nil || mounted {
		return err
	}
	if err := syscall.Mount(source, target, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mount %s on %s: %w", source, target, err)
	}
	if readOnly {
		flags := uintptr(syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY)
		if err := syscall.Mount("", target, "", flags, ""); err != nil {
			_ = syscall.Unmount(target, 0)
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	klog.FromContext(ctx).V(2).Info("Mounted", "source", source, "target", target, "readOnly", readOnly)
	return nil
}

// unmountAll unmounts target until it is no mount point; a missing target
// is not an error.
func unmountAll(ctx context.Context, target string) error {
	for range 10 {
		mounted, err := isMountPoint(target)
		if err != nil || !mounted {
			return err
		}
		if err := syscall.Unmount(target, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
		klog.FromContext(ctx).V(2).Info("Unmounted", "target", target)
	}
	return fmt.Errorf("unmount %s: still mounted after 10 unmounts", target)
}

// isMountPoint tells whether path is a mount point in this mount namespace,
// by /proc/self/mountinfo.
func isMountPoint(path string) (bool, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("resolve %s: %w", path, err)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountPath(fields[4]) == resolved {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read mounts: %w", err)
	}
	return false, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// NodeGetVolumeStats answers the file system statistics of the volume path,
// as a real driver does (the mock answers only the volume's capacity as its
// total). The mock's answer comes first, for its checks; a path the mock
// does not know but that is mounted (after a restart of csimock) is
// answered too.
func (n *nodeServer) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	resp, err := n.NodeServer.NodeGetVolumeStats(ctx, req)
	if status.Code(err) == codes.NotFound && req.GetVolumePath() != "" {
		if mounted, merr := isMountPoint(req.GetVolumePath()); merr == nil && mounted {
			resp, err = &csi.NodeGetVolumeStatsResponse{}, nil
		}
	}
	if err != nil {
		return resp, err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(req.GetVolumePath(), &st); err != nil {
		// A block volume's path, or one the mock made up: keep its answer.
		return resp, nil
	}
	bs := st.Bsize
	resp.Usage = []*csi.VolumeUsage{{
		Unit:      csi.VolumeUsage_BYTES,
		Total:     int64(st.Blocks) * bs,
		Available: int64(st.Bavail) * bs,
		Used:      int64(st.Blocks-st.Bfree) * bs,
	}, {
		Unit:      csi.VolumeUsage_INODES,
		Total:     int64(st.Files),
		Available: int64(st.Ffree),
		Used:      int64(st.Files - st.Ffree),
	}}
	return resp, nil
}
