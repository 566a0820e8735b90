// Package devices is the node side of device plugins (the kubelet's
// deviceplugin/v1beta1 API).
//
// A device plugin registers through the Registration service berth serves
// at <root>/device-plugins/kubelet.sock, or through plugin registration
// (<root>/plugins_registry, kubelet/plugins) as type DevicePlugin. The
// Manager then dials the plugin's own socket, asks its options, and follows
// its ListAndWatch stream: the devices of its resource and their health.
// The node's capacity of the resource counts all devices, its allocatable
// the healthy ones. When the plugin goes away, its devices are unhealthy at
// once (allocatable 0); after a grace period (kubelet's five minutes) the
// capacity drops to 0 too.
//
// A pod asking for a plugin's resource gets devices at admission: free
// healthy devices, the plugin's GetPreferredAllocation first when it offers
// one, then its Allocate per container. Devices of an init container may go
// to the app containers after it, as under the kubelet. The Allocate answers
// (devices, mounts, env, annotations, CDI devices) go into the container's
// CRI configuration through podruntime.DeviceSource. The assignments are
// checkpointed under the plugin directory, so that a restarted berth keeps
// them; the devices of pods that are gone are freed.
package devices
