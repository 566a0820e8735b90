package devices

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Errors a caller may tell apart with errors.Is.
var (
	// ErrRegistration marks a Register request or plugin that is refused.
	ErrRegistration = errors.New("device plugin registration refused")
	// ErrPluginUnreachable marks a plugin socket that does not answer as a
	// device plugin: nothing listens, it speaks something else, or it never
	// answers.
	ErrPluginUnreachable = errors.New("device plugin does not answer")
	// ErrAllocate marks a pod whose devices cannot be allocated.
	ErrAllocate = errors.New("device allocation failed")
)

// plugin is the connection to one registered device plugin.
type plugin struct {
	resource string
	socket   string
	conn     *grpc.ClientConn
	api      pluginapi.DevicePluginClient
	options  *pluginapi.DevicePluginOptions
	// cancel ends its ListAndWatch stream.
	cancel context.CancelFunc
	// done is closed when the stream has ended.
	done chan struct{}
}

// dialPlugin connects to the plugin at socket and asks its options, each
// within timeout. A socket that does not speak the device plugin API (or
// never answers) gives ErrPluginUnreachable naming the resource and socket.
func dialPlugin(ctx context.Context, resource, socket string, timeout time.Duration) (*plugin, error) {
	conn, err := grpc.NewClient("unix:"+socket,
		grpc.WithAuthority("localhost"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}))
	if err != nil {
		return nil, fmt.Errorf("%w: resource %s at %s: %w", ErrPluginUnreachable, resource, socket, err)
	}
	api := pluginapi.NewDevicePluginClient(conn)
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	opts, err := api.GetDevicePluginOptions(callCtx, &pluginapi.Empty{}, grpc.WaitForReady(true))
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w: resource %s at %s: failed to get device plugin options: %w", ErrPluginUnreachable, resource, socket, err)
	}
	return &plugin{resource: resource, socket: socket, conn: conn, api: api, options: opts, done: make(chan struct{})}, nil
}

// close ends the stream and the connection.
func (p *plugin) close() {
	if p.cancel != nil {
		p.cancel()
	}
	_ = p.conn.Close()
}

// watch follows the plugin's ListAndWatch stream, handing every answer to
// update, until the stream ends; it returns why.
func (p *plugin) watch(ctx context.Context, update func(devs []*pluginapi.Device)) error {
	stream, err := p.api.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		return fmt.Errorf("ListAndWatch of resource %s: %w", p.resource, err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("ListAndWatch of resource %s ended: %w", p.resource, err)
		}
		update(resp.Devices)
	}
}

// preferred asks the plugin which size devices of available it prefers,
// mustInclude among them; nil when it does not offer the call.
func (p *plugin) preferred(ctx context.Context, available, mustInclude []string, size int) ([]string, error) {
	if !p.options.GetGetPreferredAllocationAvailable() {
		return nil, nil
	}
	resp, err := p.api.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
		ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs: available, MustIncludeDeviceIDs: mustInclude, AllocationSize: int32(size),
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("device plugin GetPreferredAllocation rpc failed with err: %w", err)
	}
	if len(resp.GetContainerResponses()) == 0 {
		return nil, nil
	}
	return resp.ContainerResponses[0].DeviceIDs, nil
}

// allocate asks the plugin to prepare devs for one container.
func (p *plugin) allocate(ctx context.Context, devs []string) (*pluginapi.ContainerAllocateResponse, error) {
	resp, err := p.api.Allocate(ctx, &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: devs}},
	})
	if err != nil {
		return nil, fmt.Errorf("device plugin Allocate rpc failed with err: %w", err)
	}
	if len(resp.GetContainerResponses()) == 0 {
		return nil, fmt.Errorf("no containers return in allocation response %v", resp)
	}
	return resp.ContainerResponses[0], nil
}

// preStart calls PreStartContainer when the plugin's options ask for it.
func (p *plugin) preStart(ctx context.Context, devs []string) error {
	if !p.options.GetPreStartRequired() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, pluginapi.KubeletPreStartContainerRPCTimeoutInSecs*time.Second)
	defer cancel()
	if _, err := p.api.PreStartContainer(ctx, &pluginapi.PreStartContainerRequest{DevicesIds: devs}); err != nil {
		return fmt.Errorf("device plugin PreStartContainer rpc failed with err: %w", err)
	}
	return nil
}
