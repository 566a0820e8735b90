package devices

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"k8s.io/utils/clock"
)

// Defaults of Config, the kubelet's.
const (
	// DefaultDisconnectGrace is how long a resource keeps its capacity
	// after its plugin went away (kubelet's endpointStopGracePeriod).
	DefaultDisconnectGrace = 5 * time.Minute
	// DefaultCallTimeout bounds dialing a plugin and each call but
	// PreStartContainer (kubelet's dial timeout).
	DefaultCallTimeout = 10 * time.Second
)

// Config is what the device manager needs.
type Config struct {
	// Dir is the device plugin directory, <root>/device-plugins: berth's
	// registration socket (kubelet.sock), the plugins' sockets and the
	// checkpoint live there.
	Dir string
	// Clock tells the time of disconnections.
	Clock clock.PassiveClock
	// OnChange is called (without locks held) when the node's capacity or
	// allocatable of a resource may have changed (a plugin's devices or
	// health changed, or it went away); the node status uses it to post at
	// once. Optional.
	OnChange func()
	// DisconnectGrace is how long a resource keeps its capacity after its
	// plugin disconnected; 0 means DefaultDisconnectGrace.
	DisconnectGrace time.Duration
	// CallTimeout bounds dialing a plugin and each call to it; 0 means
	// DefaultCallTimeout.
	CallTimeout time.Duration
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if !filepath.IsAbs(c.Dir) {
		errs = append(errs, fmt.Errorf("device plugin dir %q: not an absolute path", c.Dir))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("clock: required"))
	}
	if c.DisconnectGrace < 0 || c.CallTimeout < 0 {
		errs = append(errs, errors.New("disconnect grace and call timeout: must not be negative"))
	}
	return errors.Join(errs...)
}

// resourceState is what the manager knows of one extended resource.
type resourceState struct {
	// plugin serves the resource; nil while none is connected.
	plugin *plugin
	// devices are the devices of the last ListAndWatch answer, by ID.
	devices map[string]*pluginapi.Device
	// stoppedAt is when the last plugin went away (zero while one is
	// connected, or before any did).
	stoppedAt time.Time
}

// healthy returns the IDs of the healthy devices; none while no plugin
// serves the resource.
func (r *resourceState) healthy() map[string]bool {
	out := map[string]bool{}
	if r.plugin == nil {
		return out
	}
	for id, d := range r.devices {
		if d.Health == pluginapi.Healthy {
			out[id] = true
		}
	}
	return out
}

// Manager keeps the node's device plugins, their devices and the devices'
// assignment to containers.
type Manager struct {
	cfg     Config
	metrics *metrics

	// allocMu serialises admissions: one pod's devices at a time.
	allocMu sync.Mutex
	// restoreOnce reads the checkpoint once; checkpointMu orders its
	// writes.
	restoreOnce  sync.Once
	checkpointMu sync.Mutex

	mu        sync.Mutex
	resources map[string]*resourceState
	// pods are the devices allocated, by pod UID and container name.
	pods podDevices
	// noCheckpoint tells that Restore found no checkpoint.
	noCheckpoint bool
}

// New returns a manager of cfg; Run serves the registration socket.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("device manager config: %w", err)
	}
	if cfg.DisconnectGrace == 0 {
		cfg.DisconnectGrace = DefaultDisconnectGrace
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	return &Manager{cfg: cfg, metrics: newMetrics(), resources: map[string]*resourceState{}, pods: podDevices{}}, nil
}

// changed tells the node status that the resources changed.
func (m *Manager) changed() {
	if m.cfg.OnChange != nil {
		m.cfg.OnChange()
	}
}

// connect registers the plugin serving resource at socket: it dials the
// plugin, asks its options and follows its devices until the stream ends
// or ctx does. A plugin already serving the resource is replaced.
func (m *Manager) connect(ctx context.Context, resource, socket string) error {
	log := klog.FromContext(ctx).WithValues("resource", resource, "socket", socket)
	p, err := dialPlugin(ctx, resource, socket, m.cfg.CallTimeout)
	if err != nil {
		return err
	}
	watchCtx, cancel := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), log))
	p.cancel = cancel
	m.mu.Lock()
	r := m.resourceLocked(resource)
	old := r.plugin
	r.plugin = p
	r.stoppedAt = time.Time{}
	m.mu.Unlock()
	if old != nil {
		log.Info("Device plugin replaced", "oldSocket", old.socket)
		old.close()
	}
	log.Info("Device plugin connected", "preStartRequired", p.options.GetPreStartRequired(),
		"getPreferredAllocationAvailable", p.options.GetGetPreferredAllocationAvailable())
	go func() {
		defer close(p.done)
		err := p.watch(watchCtx, func(devs []*pluginapi.Device) { m.setDevices(watchCtx, p, devs) })
		if watchCtx.Err() == nil {
			log.Error(err, "ListAndWatch ended unexpectedly for device plugin")
		}
		m.disconnect(watchCtx, p)
	}()
	return nil
}

// resourceLocked returns the state of resource, made when new. m.mu must
// be held.
func (m *Manager) resourceLocked(name string) *resourceState {
	r, ok := m.resources[name]
	if !ok {
		r = &resourceState{devices: map[string]*pluginapi.Device{}}
		m.resources[name] = r
	}
	return r
}

// setDevices records a ListAndWatch answer of plugin p.
func (m *Manager) setDevices(ctx context.Context, p *plugin, devs []*pluginapi.Device) {
	log := klog.FromContext(ctx)
	m.mu.Lock()
	r := m.resources[p.resource]
	if r == nil || r.plugin != p {
		m.mu.Unlock()
		return
	}
	old := r.devices
	r.devices = make(map[string]*pluginapi.Device, len(devs))
	healthy := 0
	var unhealthy []string
	for _, d := range devs {
		r.devices[d.ID] = d
		if d.Health == pluginapi.Healthy {
			healthy++
			continue
		}
		unhealthy = append(unhealthy, d.ID)
		if prev, ok := old[d.ID]; !ok || prev.Health != d.Health {
			log.Info("Device plugin reports an unhealthy device; it is not allocatable", "device", d.ID, "health", d.Health)
		}
	}
	m.mu.Unlock()
	log.V(2).Info("Device plugin state pushed", "total", len(devs), "healthy", healthy, "unhealthy", unhealthy)
	if err := m.writeCheckpoint(); err != nil {
		log.Error(err, "Writing the device checkpoint failed")
	}
	m.changed()
}

// disconnect forgets plugin p, if it still serves its resource: the
// resource's devices are unhealthy from now on.
func (m *Manager) disconnect(ctx context.Context, p *plugin) {
	m.mu.Lock()
	r := m.resources[p.resource]
	current := r != nil && r.plugin == p
	if current {
		r.plugin = nil
		r.stoppedAt = m.cfg.Clock.Now()
	}
	m.mu.Unlock()
	p.close()
	if current {
		klog.FromContext(ctx).Info("Device plugin disconnected; its devices are unhealthy", "resource", p.resource, "socket", p.socket)
		m.changed()
	}
}

// disconnectSocket forgets the plugin of resource at socket, if that one
// serves it.
func (m *Manager) disconnectSocket(ctx context.Context, resource, socket string) {
	m.mu.Lock()
	var p *plugin
	if r := m.resources[resource]; r != nil && r.plugin != nil && r.plugin.socket == socket {
		p = r.plugin
	}
	m.mu.Unlock()
	if p != nil {
		m.disconnect(ctx, p)
	}
}

// Resources returns the node's capacity and allocatable of the device
// plugins' resources: every device and the healthy ones. A resource
// whose plugin went away has allocatable 0 at once and capacity 0 after
// the grace period; it stays listed with 0, as the kubelet does, so that
// the node tells it is a device plugin resource with no devices now.
func (m *Manager) Resources() (capacity, allocatable v1.ResourceList) {
	m.mu.Lock()
	defer m.mu.Unlock()
	capacity, allocatable = v1.ResourceList{}, v1.ResourceList{}
	now := m.cfg.Clock.Now()
	for name, r := range m.resources {
		all := len(r.devices)
		if r.plugin == nil && (r.stoppedAt.IsZero() || now.Sub(r.stoppedAt) > m.cfg.DisconnectGrace) {
			all = 0
		}
		capacity[v1.ResourceName(name)] = *resource.NewQuantity(int64(all), resource.DecimalSI)
		allocatable[v1.ResourceName(name)] = *resource.NewQuantity(int64(len(r.healthy())), resource.DecimalSI)
	}
	return capacity, allocatable
}

// AllocatableDevices returns the healthy devices of every resource, by
// resource name, sorted by ID.
func (m *Manager) AllocatableDevices() map[string][]*pluginapi.Device {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]*pluginapi.Device{}
	for name, r := range m.resources {
		for id := range r.healthy() {
			out[name] = append(out[name], r.devices[id])
		}
		sort.Slice(out[name], func(i, j int) bool { return out[name][i].ID < out[name][j].ID })
	}
	return out
}

// stopPlugins disconnects every plugin and waits for their streams.
func (m *Manager) stopPlugins() {
	m.mu.Lock()
	var ps []*plugin
	for _, r := range m.resources {
		if r.plugin != nil {
			ps = append(ps, r.plugin)
		}
	}
	m.mu.Unlock()
	for _, p := range ps {
		p.cancel()
		<-p.done
	}
}
