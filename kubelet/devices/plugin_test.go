package devices

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// fakePlugin is a device plugin on a real Unix socket: it serves the
// DevicePlugin service with the devices a test sets and records the calls.
type fakePlugin struct {
	pluginapi.UnimplementedDevicePluginServer
	t        *testing.T
	resource string
	socket   string
	options  *pluginapi.DevicePluginOptions
	srv      *grpc.Server

	mu        sync.Mutex
	devices   []*pluginapi.Device
	updates   chan struct{}
	allocated [][]string
	preStarts [][]string
	preferred []string
}

func newFakePlugin(t *testing.T, dir, name, resource string, ids ...string) *fakePlugin {
	f := &fakePlugin{t: t, resource: resource, socket: filepath.Join(dir, name),
		options: &pluginapi.DevicePluginOptions{}, updates: make(chan struct{}, 1)}
	for _, id := range ids {
		f.devices = append(f.devices, &pluginapi.Device{ID: id, Health: pluginapi.Healthy})
	}
	return f
}

// start serves the plugin's socket.
func (f *fakePlugin) start() {
	f.t.Helper()
	_ = os.Remove(f.socket)
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		f.t.Fatal(err)
	}
	f.srv = grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(f.srv, f)
	go func() { _ = f.srv.Serve(ln) }()
	f.t.Cleanup(f.stop)
}

// stop ends the server: the manager's stream ends, as when a plugin dies.
func (f *fakePlugin) stop() {
	if f.srv != nil {
		f.srv.Stop()
	}
}

// register calls Register on the manager's registration socket.
func (f *fakePlugin) register(kubeletSock string, req *pluginapi.RegisterRequest) error {
	conn, err := grpc.NewClient("unix:"+kubeletSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	if req == nil {
		req = &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: filepath.Base(f.socket), ResourceName: f.resource, Options: f.options}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, req, grpc.WaitForReady(true))
	return err
}

// setHealth changes a device's health and pushes the new list.
func (f *fakePlugin) setHealth(id, health string) {
	f.mu.Lock()
	for _, d := range f.devices {
		if d.ID == id {
			d.Health = health
		}
	}
	f.mu.Unlock()
	select {
	case f.updates <- struct{}{}:
	default:
	}
}

func (f *fakePlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return f.options, nil
}

func (f *fakePlugin) ListAndWatch(_ *pluginapi.Empty, s pluginapi.DevicePlugin_ListAndWatchServer) error {
	for {
		f.mu.Lock()
		var devs []*pluginapi.Device
		for _, d := range f.devices {
			devs = append(devs, &pluginapi.Device{ID: d.ID, Health: d.Health})
		}
		f.mu.Unlock()
		if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
			return err
		}
		select {
		case <-f.updates:
		case <-s.Context().Done():
			return nil
		}
	}
}

func (f *fakePlugin) Allocate(_ context.Context, r *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	out := &pluginapi.AllocateResponse{}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range r.ContainerRequests {
		f.allocated = append(f.allocated, c.DevicesIds)
		resp := &pluginapi.ContainerAllocateResponse{
			Envs:        map[string]string{"FAKE_DEVICES": joinIDs(c.DevicesIds)},
			Annotations: map[string]string{"fake.example.com/devices": joinIDs(c.DevicesIds)},
		}
		for _, id := range c.DevicesIds {
			resp.Mounts = append(resp.Mounts, &pluginapi.Mount{ContainerPath: "/tmp/" + id, HostPath: "/tmp/" + id})
			resp.Devices = append(resp.Devices, &pluginapi.DeviceSpec{ContainerPath: "/dev/" + id, HostPath: "/dev/null", Permissions: "rw"})
			resp.CdiDevices = append(resp.CdiDevices, &pluginapi.CDIDevice{Name: "example.com/fake=" + id})
		}
		out.ContainerResponses = append(out.ContainerResponses, resp)
	}
	return out, nil
}

func (f *fakePlugin) GetPreferredAllocation(_ context.Context, r *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	out := &pluginapi.PreferredAllocationResponse{}
	for range r.ContainerRequests {
		out.ContainerResponses = append(out.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: f.preferred})
	}
	return out, nil
}

func (f *fakePlugin) PreStartContainer(_ context.Context, r *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	f.mu.Lock()
	f.preStarts = append(f.preStarts, r.DevicesIds)
	f.mu.Unlock()
	return &pluginapi.PreStartContainerResponse{}, nil
}

func joinIDs(ids []string) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ","
		}
		s += id
	}
	return s
}
