// Command devicemock serves upstream's device plugin stub (the one
// upstream's sample device plugin and kubelet's device manager tests use:
// k8s.io/kubernetes/pkg/kubelet/cm/devicemanager/plugin/v1beta1) with the
// devices, health and allocation answer of its flags, for what the sample
// device plugin cannot show: unhealthy devices, and environment variables
// in the allocation.
//
// Usage (as root on the node; the paths are kubelet's):
//
//	devicemock --resource example.com/mock --devices Dev-1,Dev-2,Dev-3 \
//	    [--unhealthy Dev-3] [--socket-dir /var/lib/kubelet/device-plugins] \
//	    [--kubelet-socket /var/lib/kubelet/device-plugins/kubelet.sock] \
//	    [--device-dir /var/lib/kubelet/devicemock]
//
// It serves deviceplugin/v1beta1 on <socket-dir>/devicemock-<unix time>.sock
// and registers it (Register: version v1beta1, that socket's base name, the
// resource, no options) with the kubelet socket, which must answer at start.
// When the kubelet socket is created again (a restart of the node agent) it
// restarts its server and registers again, after the stub's 10 s wait.
//
// ListAndWatch sends the devices, those of --unhealthy as Unhealthy.
// Allocate answers, per container, the environment variable
// DEVICEMOCK_DEVICES=<the device IDs, comma-separated> and, per device, a
// read-only mount of <device-dir>/<ID> (a file holding the ID, made at
// allocation) at /var/run/devicemock/<ID>; an unhealthy or unknown device
// fails the allocation.
//
// SIGTERM or SIGINT stops the server and removes its socket.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	plugin "k8s.io/kubernetes/pkg/kubelet/cm/devicemanager/plugin/v1beta1"
)

// envName is the environment variable Allocate sets.
const envName = "DEVICEMOCK_DEVICES"

// containerDir is where the devices' files are mounted in a container.
const containerDir = "/var/run/devicemock"

// Config is what devicemock serves; see the package documentation.
type Config struct {
	// Resource is the extended resource name, e.g. example.com/mock.
	Resource string
	// Devices are the device IDs.
	Devices []string
	// Unhealthy are the IDs of the devices advertised as unhealthy.
	Unhealthy []string
	// SocketDir is where the plugin's socket is made.
	SocketDir string
	// KubeletSocket is the node agent's device plugin registration socket.
	KubeletSocket string
	// DeviceDir holds the files mounted into containers as the devices.
	DeviceDir string
}

// Validate reports the first missing or bad field.
func (c Config) Validate() error {
	switch {
	case !strings.Contains(c.Resource, "/"):
		return fmt.Errorf("--resource %q: want DOMAIN/NAME", c.Resource)
	case len(c.Devices) == 0:
		return errors.New("--devices: none")
	case c.SocketDir == "" || c.KubeletSocket == "" || c.DeviceDir == "":
		return errors.New("--socket-dir, --kubelet-socket and --device-dir are required")
	}
	for _, id := range c.Unhealthy {
		if !slices.Contains(c.Devices, id) {
			return fmt.Errorf("--unhealthy %s: not one of --devices", id)
		}
	}
	return nil
}

// list splits a comma-separated flag value.
func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func main() {
	klog.InitFlags(nil)
	var cfg Config
	var devices, unhealthy string
	flag.StringVar(&cfg.Resource, "resource", "example.com/mock", "extended resource name")
	flag.StringVar(&devices, "devices", "Dev-1,Dev-2", "device IDs, comma-separated")
	flag.StringVar(&unhealthy, "unhealthy", "", "IDs of the devices advertised as unhealthy, comma-separated")
	flag.StringVar(&cfg.SocketDir, "socket-dir", pluginapi.DevicePluginPath, "folder of the plugin's socket")
	flag.StringVar(&cfg.KubeletSocket, "kubelet-socket", pluginapi.KubeletSocket, "the node agent's registration socket")
	flag.StringVar(&cfg.DeviceDir, "device-dir", "/var/lib/kubelet/devicemock", "folder of the files mounted as the devices")
	flag.Parse()
	cfg.Devices, cfg.Unhealthy = list(devices), list(unhealthy)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	logger := klog.Background().WithName("devicemock")
	ctx = klog.NewContext(ctx, logger)
	if err := run(ctx, cfg); err != nil {
		logger.Error(err, "devicemock failed")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

// run serves and registers the stub until ctx ends.
func run(ctx context.Context, cfg Config) error {
	logger := klog.FromContext(ctx)
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DeviceDir, 0o755); err != nil {
		return fmt.Errorf("device folder: %w", err)
	}
	var devs []*pluginapi.Device
	for _, id := range cfg.Devices {
		health := pluginapi.Healthy
		if slices.Contains(cfg.Unhealthy, id) {
			health = pluginapi.Unhealthy
		}
		devs = append(devs, &pluginapi.Device{ID: id, Health: health})
	}
	socket := filepath.Join(cfg.SocketDir, fmt.Sprintf("devicemock-%d.sock", time.Now().Unix()))
	stub := plugin.NewDevicePluginStub(logger, devs, socket, cfg.Resource, false, false)
	stub.SetAllocFunc(allocator(cfg.DeviceDir))
	if err := stub.Start(ctx); err != nil {
		return fmt.Errorf("serve %s: %w", socket, err)
	}
	defer func() {
		if err := stub.Stop(logger); err != nil {
			logger.Error(err, "Stopping")
		}
	}()
	if err := stub.Register(ctx, cfg.KubeletSocket, cfg.Resource, cfg.SocketDir); err != nil {
		return fmt.Errorf("register with %s: %w", cfg.KubeletSocket, err)
	}
	logger.Info("Registered", "resource", cfg.Resource, "socket", socket, "devices", cfg.Devices, "unhealthy", cfg.Unhealthy)
	go stub.Watch(ctx, cfg.KubeletSocket, cfg.Resource, cfg.SocketDir)
	<-ctx.Done()
	logger.Info("Shutting down")
	return nil
}

// allocator returns the stub's Allocate answer: the device IDs in an
// environment variable, and a file per device mounted read-only.
func allocator(deviceDir string) func(*pluginapi.AllocateRequest, map[string]*pluginapi.Device) (*pluginapi.AllocateResponse, error) {
	return func(r *pluginapi.AllocateRequest, devs map[string]*pluginapi.Device) (*pluginapi.AllocateResponse, error) {
		resp := &pluginapi.AllocateResponse{}
		for _, req := range r.ContainerRequests {
			c := &pluginapi.ContainerAllocateResponse{
				Envs: map[string]string{envName: strings.Join(req.DevicesIds, ",")},
			}
			for _, id := range req.DevicesIds {
				dev, ok := devs[id]
				switch {
				case !ok:
					return nil, fmt.Errorf("allocate: no device %s", id)
				case dev.Health != pluginapi.Healthy:
					return nil, fmt.Errorf("allocate: device %s is %s", id, dev.Health)
				}
				host := filepath.Join(deviceDir, id)
				if err := os.WriteFile(host, []byte(id+"\n"), 0o644); err != nil {
					return nil, fmt.Errorf("allocate %s: %w", id, err)
				}
				c.Mounts = append(c.Mounts, &pluginapi.Mount{
					ContainerPath: filepath.Join(containerDir, id),
					HostPath:      host,
					ReadOnly:      true,
				})
			}
			resp.ContainerResponses = append(resp.ContainerResponses, c)
		}
		return resp, nil
	}
}
