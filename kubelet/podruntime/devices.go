package podruntime

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerDevices is what device plugins gave one container at its pod's
// admission (their Allocate answers), in the CRI's terms.
type ContainerDevices struct {
	// Devices are the device nodes to create in the container.
	Devices []*runtimeapi.Device
	// Mounts are the host paths to bind-mount into the container.
	Mounts []*runtimeapi.Mount
	// Envs are environment variables; the container's own env overrides
	// them, as under the kubelet.
	Envs []*runtimeapi.KeyValue
	// Annotations go to the runtime with the container's configuration.
	Annotations map[string]string
	// CDIDevices are fully qualified CDI device names for the runtime to
	// inject.
	CDIDevices []*runtimeapi.CDIDevice
}

// DeviceSource gives a container the devices allocated to it.
// kubelet/devices implements it.
type DeviceSource interface {
	// ContainerDevices returns what the device plugins allocated to the
	// container, after the plugins' PreStartContainer where they ask for
	// it; an empty value when the container asked for no devices.
	ContainerDevices(ctx context.Context, pod *v1.Pod, c *v1.Container) (ContainerDevices, error)
}

// addDevices puts the container's devices into its configuration: the
// device plugins' mounts, devices, annotations and CDI devices, and their
// environment before the container's own (which wins, coming later).
func addDevices(cfg *runtimeapi.ContainerConfig, d ContainerDevices) {
	cfg.Devices = append(cfg.Devices, d.Devices...)
	cfg.CDIDevices = append(cfg.CDIDevices, d.CDIDevices...)
	taken := map[string]bool{}
	for _, m := range cfg.Mounts {
		taken[m.ContainerPath] = true
	}
	for _, m := range d.Mounts {
		// A volume mounted at the same path wins, as it does in kubelet's
		// container config (the runtime would refuse duplicates).
		if !taken[m.ContainerPath] {
			cfg.Mounts = append(cfg.Mounts, m)
		}
	}
	if len(d.Envs) > 0 {
		cfg.Envs = append(append([]*runtimeapi.KeyValue{}, d.Envs...), cfg.Envs...)
	}
	for k, v := range d.Annotations {
		if _, ours := cfg.Annotations[k]; !ours {
			cfg.Annotations[k] = v
		}
	}
}

// containerDevices asks the device source, if there is one, for the
// container's devices.
func (r *Runner) containerDevices(ctx context.Context, pod *v1.Pod, c *v1.Container) (ContainerDevices, error) {
	if r.devices == nil {
		return ContainerDevices{}, nil
	}
	d, err := r.devices.ContainerDevices(ctx, pod, c)
	if err != nil {
		return ContainerDevices{}, fmt.Errorf("devices of container %q: %w", c.Name, err)
	}
	return d, nil
}
