package devices

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/berthnode/berth/kubelet/plugins"
)

// socketName is the registration socket's name in the plugin directory.
const socketName = "kubelet.sock"

// SocketPath returns the registration socket that plugins call Register on.
func (m *Manager) SocketPath() string { return filepath.Join(m.cfg.Dir, socketName) }

// Run restores the checkpoint, serves the Registration service until ctx
// ends, then disconnects the plugins. The old registration socket is
// removed first: plugins watch it and register again when a new one
// appears, which is how they find a restarted berth.
func (m *Manager) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithName("devices")
	ctx = klog.NewContext(ctx, log)
	if err := os.MkdirAll(m.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("create device plugin dir: %w", err)
	}
	m.Restore(ctx)
	sock := m.SocketPath()
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale registration socket: %w", err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on device plugin registration socket: %w", err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, &registration{m: m, ctx: ctx})
	log.Info("Serving device plugin registration", "socket", sock, "version", pluginapi.Version)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		srv.Stop()
		<-errc
	case err = <-errc:
		err = fmt.Errorf("device plugin registration server: %w", err)
	}
	m.stopPlugins()
	return err
}

// Restore reads the checkpoint, once: the assignments made before a
// restart are back, so that admissions do not hand out those devices again.
// Run restores too; call Restore before the pods are admitted when that
// may happen before Run starts. A checkpoint that cannot be read is logged
// and the manager starts without it, as the kubelet does.
func (m *Manager) Restore(ctx context.Context) {
	m.restoreOnce.Do(func() {
		log := klog.FromContext(ctx)
		// As the kubelet judges: a plugin directory with nothing in it
		// (no checkpoint, not even a socket) is a new or wiped node.
		entries, _ := os.ReadDir(m.cfg.Dir)
		m.mu.Lock()
		m.noCheckpoint = len(entries) == 0
		m.mu.Unlock()
		if err := m.readCheckpoint(ctx); err != nil {
			log.Error(err, "Continuing without the device checkpoint; device allocations may not be up to date")
		}
		// Written at once, so that the next start knows the node, with or
		// without device plugins.
		if _, err := os.Stat(m.checkpointPath()); errors.Is(err, os.ErrNotExist) {
			err := os.MkdirAll(m.cfg.Dir, 0o750)
			if err == nil {
				err = m.writeCheckpoint()
			}
			if err != nil {
				log.Error(err, "Writing the device checkpoint failed")
			}
		}
	})
}

// CheckpointMissing tells whether Restore found the plugin directory empty:
// the node is new or its disk was wiped, so what an existing Node says of
// extended resources is stale (kubelet's
// ShouldResetExtendedResourceCapacity).
func (m *Manager) CheckpointMissing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.noCheckpoint
}

// registration serves the Registration service.
type registration struct {
	pluginapi.UnimplementedRegistrationServer
	m *Manager
	// ctx is the manager's: the plugin's stream lives as long as berth,
	// not as long as the Register call.
	ctx context.Context
}

// Register validates the request and connects to the plugin.
func (s *registration) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	log := klog.FromContext(s.ctx).WithValues("resource", r.ResourceName, "endpoint", r.Endpoint)
	log.Info("Got registration request from device plugin")
	s.m.metrics.registrations.WithLabelValues(r.ResourceName).Inc()
	err := checkVersions(r.Version)
	if err == nil {
		err = checkResource(r.ResourceName)
	}
	var sock string
	if err == nil {
		sock, err = endpointPath(s.m.cfg.Dir, r.Endpoint)
	}
	if err == nil {
		err = s.m.connect(klog.NewContext(s.ctx, log), r.ResourceName, sock)
	}
	if err != nil {
		log.Error(err, "Bad registration request from device plugin")
		return nil, status.Error(registerCode(err), err.Error())
	}
	return &pluginapi.Empty{}, nil
}

// registerCode is the gRPC code of a refused registration: the plugin's
// request is wrong, or its socket does not answer.
func registerCode(err error) codes.Code {
	switch {
	case errors.Is(err, ErrRegistration):
		return codes.InvalidArgument
	case errors.Is(err, ErrPluginUnreachable):
		return codes.Unavailable
	default:
		return codes.Internal
	}
}

// Handler returns the handler of device plugins found through plugin
// registration (plugins.TypeDevice).
func (m *Manager) Handler() plugins.Handler { return handler{m} }

// handler takes device plugins from the plugin registration watcher.
type handler struct{ m *Manager }

// Validate checks the plugin's versions and resource name.
func (h handler) Validate(p plugins.Plugin) error {
	if err := checkVersions(p.Versions...); err != nil {
		return err
	}
	return checkResource(p.Name)
}

// Register connects to the plugin's endpoint.
func (h handler) Register(ctx context.Context, p plugins.Plugin) error {
	h.m.metrics.registrations.WithLabelValues(p.Name).Inc()
	return h.m.connect(ctx, p.Name, p.Endpoint)
}

// Deregister disconnects the plugin, if it still serves its resource.
func (h handler) Deregister(ctx context.Context, p plugins.Plugin) {
	h.m.disconnectSocket(ctx, p.Name, p.Endpoint)
}
