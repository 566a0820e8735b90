package podruntime

import (
	"errors"

	v1 "k8s.io/api/core/v1"
	nodev1client "k8s.io/client-go/kubernetes/typed/node/v1"
	"k8s.io/client-go/tools/record"
	internalapi "k8s.io/cri-api/pkg/apis"
	"k8s.io/utils/clock"
)

// Settings are the node's settings that sandboxes and containers are made
// with.
type Settings struct {
	// RootDir is the kubelet root directory (/var/lib/kubelet): pod
	// directories, termination message files and /etc/hosts live below it.
	RootDir string
	// PodLogsDir is the directory of the pods' log directories.
	PodLogsDir string
	// ClusterDNS and ClusterDomain are the cluster's DNS servers and domain.
	ClusterDNS    []string
	ClusterDomain string
	// ResolverConfig is the node's resolv.conf ("": none).
	ResolverConfig string
	// CgroupRoot, CgroupDriver and CgroupsPerQOS place the pods' cgroups.
	CgroupRoot    string
	CgroupDriver  string
	CgroupsPerQOS bool
	// Resources are the settings of container resources.
	Resources ResourceParams
	// NodeCPUMilli and NodeMemory are the node's capacity, for resource
	// environment variables of containers without limits.
	NodeCPUMilli int64
	NodeMemory   int64
}

// Config is what the runtime side needs from the rest of berth.
type Config struct {
	// Runtime and Images are the CRI services.
	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService
	// Recorder emits events about pods.
	Recorder record.EventRecorder
	// Clock is the time source of back-offs and hooks.
	Clock clock.Clock
	// Objects reads ConfigMaps and Secrets; RuntimeClasses resolves a pod's
	// runtimeClassName to its CRI handler.
	Objects        Objects
	RuntimeClasses nodev1client.RuntimeClassesGetter
	// Services returns the services whose variables a pod's containers get.
	Services func(pod *v1.Pod) ([]*v1.Service, error)
	// HostIPs returns the node's IPs, primary first.
	HostIPs func() []string
	// SandboxSlots is how many sandboxes are made at once: the runtime
	// makes them (network namespace, CNI, pause container) far faster a
	// few at a time than all at once.
	SandboxSlots int
	// Settings are the node's settings.
	Settings Settings
	// Devices gives containers the devices of device plugins; nil when
	// the node has none.
	Devices DeviceSource
}

// Validate tells whether the configuration is complete.
func (c *Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name    string
		missing bool
	}{
		{"Runtime", c.Runtime == nil}, {"Images", c.Images == nil}, {"Recorder", c.Recorder == nil},
		{"Clock", c.Clock == nil}, {"Objects", c.Objects == nil}, {"RuntimeClasses", c.RuntimeClasses == nil},
		{"Services", c.Services == nil}, {"HostIPs", c.HostIPs == nil},
	} {
		if f.missing {
			errs = append(errs, errors.New("runtime config field "+f.name+" is nil"))
		}
	}
	if c.SandboxSlots < 1 {
		errs = append(errs, errors.New("runtime config field SandboxSlots is below 1"))
	}
	return errors.Join(errs...)
}

// Runner carries out the pods' actions on the runtime. Its per-pod side is
// Pod.
type Runner struct {
	runtime        internalapi.RuntimeService
	images         internalapi.ImageManagerService
	recorder       record.EventRecorder
	clock          clock.Clock
	objects        Objects
	runtimeClasses nodev1client.RuntimeClassesGetter
	services       func(pod *v1.Pod) ([]*v1.Service, error)
	hostIPs        func() []string
	settings       Settings
	devices        DeviceSource
	// slots bounds the sandboxes being made at once.
	slots chan struct{}
}

// NewRunner returns a runner of a valid configuration.
func NewRunner(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Runner{
		runtime: cfg.Runtime, images: cfg.Images, recorder: cfg.Recorder, clock: cfg.Clock,
		objects: cfg.Objects, runtimeClasses: cfg.RuntimeClasses,
		services: cfg.Services, hostIPs: cfg.HostIPs, settings: cfg.Settings, devices: cfg.Devices,
		slots: make(chan struct{}, cfg.SandboxSlots),
	}, nil
}

// Pod is the runtime side of one pod: what it remembers between syncs. It
// belongs to the pod worker's goroutine.
type Pod struct {
	r *Runner
	// Crash is the restart back-off of containers, by container name.
	Crash *Backoff
	// Pulls is the image pull back-off, by image.
	Pulls *Backoff
	// PullErrors keeps the last pull error per image for the back-off
	// message.
	PullErrors map[string]string
	// Waiting holds why containers that failed to start wait, by name.
	Waiting map[string]WaitingReason
	// Mark, when set, notes a step of the pod's start (for its trace).
	Mark func(step string)
}

// NewPod returns the runtime side of a pod new to the node.
func (r *Runner) NewPod() *Pod {
	return &Pod{
		r:          r,
		Crash:      newBackoff(initialBackoff, maxBackoff, r.clock),
		Pulls:      newBackoff(initialBackoff, maxBackoff, r.clock),
		PullErrors: map[string]string{},
		Waiting:    map[string]WaitingReason{},
	}
}

func (p *Pod) mark(step string) {
	if p.Mark != nil {
		p.Mark(step)
	}
}
