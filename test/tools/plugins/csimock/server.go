package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	"k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/driver"
	"k8s.io/kubernetes/test/e2e/storage/drivers/csi-test/mock/service"
)

// Config is what csimock serves; see the package documentation for the flags.
type Config struct {
	// Name is the CSI driver name.
	Name string
	// NodeID is the node ID NodeGetInfo returns.
	NodeID string
	// Topology is NodeGetInfo's accessible topology; none if empty.
	Topology map[string]string
	// Endpoint is the path of the CSI Unix socket.
	Endpoint string
	// RegistrationSocket is the path of the pluginregistration/v1 Unix
	// socket; no registration is served if empty.
	RegistrationSocket string
	// ControlDir holds calls.jsonl, registration.jsonl and the fault files.
	ControlDir string
	// StateDir holds one backing directory per volume ID.
	StateDir string
	// Volumes is the number of volumes the mock knows (IDs "1" to "N").
	Volumes int
	// AttachRequired makes the mock require the publish context "device".
	AttachRequired bool
	// NodeExpand advertises the node EXPAND_VOLUME capability.
	NodeExpand bool
	// AttachLimit is NodeGetInfo's max volumes per node; 0 for none.
	AttachLimit int64
}

// Validate reports the first missing or bad field.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("--name is required")
	case c.NodeID == "":
		return errors.New("--node-id is required")
	case c.Endpoint == "":
		return errors.New("--endpoint is required")
	case c.ControlDir == "":
		return errors.New("--control-dir is required")
	case c.StateDir == "":
		return errors.New("--state-dir is required")
	case c.Volumes < 0:
		return fmt.Errorf("--volumes %d: must not be negative", c.Volumes)
	}
	return nil
}

// run serves the driver and the registration until ctx ends.
func run(ctx context.Context, cfg Config) error {
	logger := klog.FromContext(ctx)
	if err := cfg.Validate(); err != nil {
		return err
	}
	for _, dir := range []string{cfg.ControlDir, cfg.StateDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("control directories: %w", err)
		}
	}
	mock := service.New(service.Config{
		DriverName:            cfg.Name,
		DisableAttach:         !cfg.AttachRequired,
		AttachLimit:           cfg.AttachLimit,
		NodeExpansionRequired: cfg.NodeExpand,
		EnableTopology:        len(cfg.Topology) > 0,
		// kubelet may find the target directory already there (after a
		// restart, or when it created it itself).
		PermissiveTargetPath: true,
	})
	if err := addVolumes(ctx, mock, cfg.Volumes); err != nil {
		return err
	}
	node := &nodeServer{NodeServer: mock, cfg: cfg}
	ctl := &control{dir: cfg.ControlDir}
	drv := driver.NewCSIDriver(&driver.CSIDriverServers{Controller: mock, Identity: mock, Node: node})

	l, err := listenUnix(cfg.Endpoint)
	if err != nil {
		return err
	}
	defer removeSocket(ctx, cfg.Endpoint)
	if err := drv.Start(l, ctl.intercept); err != nil {
		return fmt.Errorf("serve CSI on %s: %w", cfg.Endpoint, err)
	}
	defer drv.Stop()
	logger.Info("Serving the mock CSI driver", "name", cfg.Name, "endpoint", cfg.Endpoint, "nodeID", cfg.NodeID)

	if cfg.RegistrationSocket != "" {
		rl, err := listenUnix(cfg.RegistrationSocket)
		if err != nil {
			return err
		}
		defer removeSocket(ctx, cfg.RegistrationSocket)
		reg := grpc.NewServer()
		registerapi.RegisterRegistrationServer(reg, &registration{cfg: cfg, ctl: ctl, logger: logger})
		go func() {
			if err := reg.Serve(rl); err != nil {
				logger.Error(err, "Registration server stopped")
			}
		}()
		defer reg.Stop()
		logger.Info("Serving plugin registration", "socket", cfg.RegistrationSocket)
	}
	<-ctx.Done()
	logger.Info("Shutting down")
	return nil
}

// addVolumes creates volumes until the mock knows the IDs "1" to "n". The
// mock starts with three and numbers new ones in order, so the IDs are the
// same after a restart.
func addVolumes(ctx context.Context, mock service.Service, n int) error {
	for i := 4; i <= n; i++ {
		name := "Mock Volume " + strconv.Itoa(i)
		resp, err := mock.CreateVolume(ctx, &csi.CreateVolumeRequest{
			Name: name,
			VolumeCapabilities: []*csi.VolumeCapability{{
				AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
				AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
			}},
		})
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if got := resp.GetVolume().GetVolumeId(); got != strconv.Itoa(i) {
			return fmt.Errorf("create %s: got volume ID %q, want %d", name, got, i)
		}
	}
	return nil
}

// listenUnix listens on a Unix socket at path, replacing a stale one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}

// removeSocket removes a socket file, logging a failure.
func removeSocket(ctx context.Context, path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		klog.FromContext(ctx).Error(err, "Removing socket", "path", path)
	}
}

// registration answers the pluginregistration/v1 calls of a node agent.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	cfg    Config
	ctl    *control
	logger klog.Logger
}

// GetInfo describes the driver: a CSI plugin at the endpoint, version 1.0.0.
func (r *registration) GetInfo(ctx context.Context, _ *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	r.logger.Info("GetInfo")
	r.ctl.appendLine("registration.jsonl", map[string]any{"method": "GetInfo"})
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.cfg.Name,
		Endpoint:          r.cfg.Endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

// NotifyRegistrationStatus logs and records the node agent's verdict.
func (r *registration) NotifyRegistrationStatus(ctx context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	r.logger.Info("NotifyRegistrationStatus", "registered", st.PluginRegistered, "error", st.Error)
	r.ctl.appendLine("registration.jsonl", map[string]any{
		"method":            "NotifyRegistrationStatus",
		"plugin_registered": st.PluginRegistered,
		"error":             st.Error,
	})
	return &registerapi.RegistrationStatusResponse{}, nil
}
