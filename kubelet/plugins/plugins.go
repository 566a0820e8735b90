package plugins

import "context"

// Plugin types, as a plugin names its type in its GetInfo answer.
const (
	// TypeCSI is a CSI driver (registerapi.CSIPlugin).
	TypeCSI = "CSIPlugin"
	// TypeDevice is a device plugin (registerapi.DevicePlugin).
	TypeDevice = "DevicePlugin"
)

// Plugin is a plugin that answered GetInfo.
type Plugin struct {
	// Type is the plugin's type, such as TypeCSI.
	Type string
	// Name is the plugin's name: the CSI driver's name, or the resource
	// name of a device plugin.
	Name string
	// Endpoint is the socket that serves the plugin's own API: the answer's
	// endpoint, or the registration socket when the answer left it empty.
	Endpoint string
	// Versions are the versions of its API the plugin supports.
	Versions []string
	// Socket is the registration socket the plugin was found at.
	Socket string
}

// Handler takes the plugins of one type.
type Handler interface {
	// Validate checks that the plugin can be registered, before Register.
	// Its error goes back to the plugin in NotifyRegistrationStatus.
	Validate(p Plugin) error
	// Register makes the plugin usable. Its error goes back to the plugin,
	// which stays unregistered.
	Register(ctx context.Context, p Plugin) error
	// Deregister forgets a registered plugin whose socket went away or was
	// replaced.
	Deregister(ctx context.Context, p Plugin)
}
