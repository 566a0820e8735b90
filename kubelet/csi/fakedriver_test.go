package csi

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// call is one RPC the fake driver saw.
type call struct {
	method  string
	volume  string
	target  string // staging or target path
	staging string // NodePublishVolume's staging path
	context map[string]string
	publish map[string]string
	secrets map[string]string
	group   string
	block   bool
	ro      bool
}

// fakeDriver is a CSI node and identity service on a real Unix socket. It
// records the calls it gets; fail makes a method fail, block makes it wait
// until the channel is closed.
type fakeDriver struct {
	csipb.UnimplementedNodeServer
	csipb.UnimplementedIdentityServer

	socket string
	caps   []csipb.NodeServiceCapability_RPC_Type
	info   *csipb.NodeGetInfoResponse

	mu    sync.Mutex
	calls []call
	fail  map[string]codes.Code
	block map[string]chan struct{}
}

// startDriver serves a fake driver with caps until the test ends.
func startDriver(t *testing.T, caps ...csipb.NodeServiceCapability_RPC_Type) *fakeDriver {
	t.Helper()
	// Unix socket paths are short; t.TempDir's can be too long.
	dir, err := os.MkdirTemp("", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	d := &fakeDriver{
		socket: filepath.Join(dir, "csi.sock"),
		caps:   caps,
		info: &csipb.NodeGetInfoResponse{
			NodeId:             "node-id-1",
			MaxVolumesPerNode:  7,
			AccessibleTopology: &csipb.Topology{Segments: map[string]string{"topology.fake.csi/zone": "z1"}},
		},
		fail:  map[string]codes.Code{},
		block: map[string]chan struct{}{},
	}
	l, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	csipb.RegisterNodeServer(srv, d)
	csipb.RegisterIdentityServer(srv, d)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return d
}

// record notes a call and applies the method's fault.
func (d *fakeDriver) record(ctx context.Context, c call) error {
	d.mu.Lock()
	d.calls = append(d.calls, c)
	code, fail := d.fail[c.method]
	wait := d.block[c.method]
	d.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return status.Error(code, c.method+" failed on purpose")
	}
	return nil
}

// methods returns the names of the calls seen, in order.
func (d *fakeDriver) methods() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, c := range d.calls {
		out = append(out, c.method)
	}
	return out
}

// last returns the last call of method.
func (d *fakeDriver) last(t *testing.T, method string) call {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.calls) - 1; i >= 0; i-- {
		if d.calls[i].method == method {
			return d.calls[i]
		}
	}
	t.Fatalf("no %s call; calls: %v", method, d.calls)
	return call{}
}

func (d *fakeDriver) NodeGetCapabilities(context.Context, *csipb.NodeGetCapabilitiesRequest) (*csipb.NodeGetCapabilitiesResponse, error) {
	resp := &csipb.NodeGetCapabilitiesResponse{}
	for _, c := range d.caps {
		resp.Capabilities = append(resp.Capabilities, &csipb.NodeServiceCapability{
			Type: &csipb.NodeServiceCapability_Rpc{Rpc: &csipb.NodeServiceCapability_RPC{Type: c}},
		})
	}
	return resp, nil
}

func (d *fakeDriver) NodeGetInfo(context.Context, *csipb.NodeGetInfoRequest) (*csipb.NodeGetInfoResponse, error) {
	return d.info, nil
}

func (d *fakeDriver) NodeStageVolume(ctx context.Context, r *csipb.NodeStageVolumeRequest) (*csipb.NodeStageVolumeResponse, error) {
	c := call{method: "NodeStageVolume", volume: r.VolumeId, target: r.StagingTargetPath, context: r.VolumeContext, publish: r.PublishContext, secrets: r.Secrets,
		block: r.GetVolumeCapability().GetBlock() != nil}
	return &csipb.NodeStageVolumeResponse{}, d.record(ctx, c)
}

func (d *fakeDriver) NodeUnstageVolume(ctx context.Context, r *csipb.NodeUnstageVolumeRequest) (*csipb.NodeUnstageVolumeResponse, error) {
	c := call{method: "NodeUnstageVolume", volume: r.VolumeId, target: r.StagingTargetPath}
	return &csipb.NodeUnstageVolumeResponse{}, d.record(ctx, c)
}

func (d *fakeDriver) NodePublishVolume(ctx context.Context, r *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
	c := call{method: "NodePublishVolume", volume: r.VolumeId, target: r.TargetPath, staging: r.StagingTargetPath,
		context: r.VolumeContext, publish: r.PublishContext, secrets: r.Secrets, group: r.GetVolumeCapability().GetMount().GetVolumeMountGroup(),
		block: r.GetVolumeCapability().GetBlock() != nil, ro: r.Readonly}
	if err := d.record(ctx, c); err != nil {
		return nil, err
	}
	// A real driver mounts the target; the fake makes the directory.
	return &csipb.NodePublishVolumeResponse{}, os.MkdirAll(r.TargetPath, 0o750)
}

func (d *fakeDriver) NodeUnpublishVolume(ctx context.Context, r *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
	c := call{method: "NodeUnpublishVolume", volume: r.VolumeId, target: r.TargetPath}
	return &csipb.NodeUnpublishVolumeResponse{}, d.record(ctx, c)
}

func (d *fakeDriver) NodeGetVolumeStats(ctx context.Context, r *csipb.NodeGetVolumeStatsRequest) (*csipb.NodeGetVolumeStatsResponse, error) {
	c := call{method: "NodeGetVolumeStats", volume: r.VolumeId, target: r.VolumePath}
	return &csipb.NodeGetVolumeStatsResponse{Usage: []*csipb.VolumeUsage{
		{Unit: csipb.VolumeUsage_BYTES, Total: 1000, Used: 300, Available: 700},
		{Unit: csipb.VolumeUsage_INODES, Total: 100, Used: 10, Available: 90},
	}}, d.record(ctx, c)
}

func (d *fakeDriver) NodeExpandVolume(ctx context.Context, r *csipb.NodeExpandVolumeRequest) (*csipb.NodeExpandVolumeResponse, error) {
	c := call{method: "NodeExpandVolume", volume: r.VolumeId, target: r.VolumePath}
	return &csipb.NodeExpandVolumeResponse{CapacityBytes: r.GetCapacityRange().GetRequiredBytes()}, d.record(ctx, c)
}
