package pods

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	internalapi "k8s.io/cri-api/pkg/apis"
	kubeletconfigv1beta1 "k8s.io/kubelet/config/v1beta1"

	"github.com/berthnode/berth/kubelet/podruntime"
	"k8s.io/utils/clock"
)

// Volumes prepares a pod's volumes on the node. kubelet/volume implements it.
type Volumes interface {
	// Setup makes every volume of pod available and returns, per volume
	// name, the host path to bind-mount (read-only flags come from the
	// VolumeMount), or for a block volume the device file to pass in
	// volumeDevices. A returned error must name the volume and cause; the pod
	// stays ContainerCreating, a FailedMount event is emitted, and Setup is
	// retried.
	Setup(ctx context.Context, pod *v1.Pod) (map[string]string, error)
	// Teardown removes what Setup made for the pod with this UID (also for
	// pods no longer known, from what is on disk below
	// RootDir/pods/<uid>/volumes and volumeDevices). A failed Teardown is
	// retried.
	Teardown(ctx context.Context, uid types.UID) error
}

// Devices allocates the device plugins' devices to pods and gives them to
// their containers. kubelet/devices implements it.
type Devices interface {
	podruntime.DeviceSource
	// Admit allocates the devices of every container of a pod being
	// admitted; an error rejects the pod (UnexpectedAdmissionError). A pod
	// that has its devices already (before a restart of berth) keeps them.
	Admit(ctx context.Context, pod *v1.Pod) error
	// Release frees the devices of a pod that has terminated or is gone.
	Release(ctx context.Context, uid types.UID)
	// Retain frees the devices of every pod not in active.
	Retain(ctx context.Context, active map[types.UID]bool)
}

// StaticPodSource delivers the node's static pods: pods run from local
// manifests instead of the API server. kubelet/staticpods implements it.
type StaticPodSource interface {
	// Run calls update with the complete set of static pods once it has
	// read them for the first time, and again whenever the set changes,
	// until ctx is done. A pod's UID identifies its content: a changed pod
	// comes with a new UID.
	Run(ctx context.Context, update func(pods []*v1.Pod)) error
}

// Config is what the pod manager needs from the rest of berth.
type Config struct {
	// NodeName is this node's name; only pods bound to it are run.
	NodeName string
	// Client talks to the API server with the node's credentials
	// (system:node:NAME, under the Node authorizer and NodeRestriction).
	Client kubernetes.Interface
	// Runtime is the CRI runtime service.
	Runtime internalapi.RuntimeService
	// Images is the CRI image service.
	Images internalapi.ImageManagerService
	// Volumes sets up and tears down pod volumes.
	Volumes Volumes
	// Recorder emits events about pods (source component "kubelet").
	Recorder record.EventRecorder
	// Kubelet is the defaulted kubelet configuration; the pod manager reads
	// ClusterDNS, ClusterDomain, CgroupDriver, CgroupRoot, CgroupsPerQOS,
	// ResolverConfig, CPUCFSQuota, CPUCFSQuotaPeriod, SyncFrequency and
	// MaxPods (0: no limit).
	Kubelet *kubeletconfigv1beta1.KubeletConfiguration
	// RootDir is the kubelet root directory (/var/lib/kubelet); termination
	// message files live under pods/<uid>/containers/<name>/.
	RootDir string
	// PodLogsDir is the directory of pod logs (/var/log/pods).
	PodLogsDir string
	// NodeIPs returns the node's IPs for status.hostIP(s), primary first.
	NodeIPs func() []net.IP
	// Clock is the time source of back-offs, retries and the relist loop.
	Clock clock.WithTicker
	// MemoryCapacityBytes is the node's memory, for the OOM score of
	// burstable containers and for resourceFieldRef limits that are not
	// set; 0 reads it from the kernel.
	MemoryCapacityBytes int64
	// StaticPods is the source of static pods; nil means none. Static pods
	// run like the others and show in the API as mirror pods.
	StaticPods StaticPodSource
	// Informers, when set, is the cluster-wide informer factory the rest of
	// berth shares (the service proxy watches Services too): the pod
	// manager takes its Services from it, so that a node holds them once.
	// The caller starts it. nil: the pod manager has its own.
	Informers informers.SharedInformerFactory
	// Devices allocates device plugins' devices at admission; nil: the
	// node has no device plugins.
	Devices Devices
}

// Validate reports what is missing or wrong in the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("config field NodeName is empty"))
	}
	if c.Client == nil {
		errs = append(errs, errors.New("config field Client is nil"))
	}
	if c.Runtime == nil {
		errs = append(errs, errors.New("config field Runtime is nil"))
	}
	if c.Images == nil {
		errs = append(errs, errors.New("config field Images is nil"))
	}
	if c.Volumes == nil {
		errs = append(errs, errors.New("config field Volumes is nil"))
	}
	if c.Recorder == nil {
		errs = append(errs, errors.New("config field Recorder is nil"))
	}
	if c.NodeIPs == nil {
		errs = append(errs, errors.New("config field NodeIPs is nil"))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("config field Clock is nil"))
	}
	if !filepath.IsAbs(c.RootDir) {
		errs = append(errs, fmt.Errorf("config field RootDir %q is not an absolute path", c.RootDir))
	}
	if !filepath.IsAbs(c.PodLogsDir) {
		errs = append(errs, fmt.Errorf("config field PodLogsDir %q is not an absolute path", c.PodLogsDir))
	}
	if c.MemoryCapacityBytes < 0 {
		errs = append(errs, fmt.Errorf("config field MemoryCapacityBytes %d is negative", c.MemoryCapacityBytes))
	}
	if c.Kubelet == nil {
		errs = append(errs, errors.New("config field Kubelet is nil"))
	} else {
		errs = append(errs, validateKubelet(c.Kubelet)...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid pod manager configuration: %w", err)
	}
	return nil
}

func validateKubelet(k *kubeletconfigv1beta1.KubeletConfiguration) []error {
	var errs []error
	switch k.CgroupDriver {
	case "cgroupfs", "systemd":
	default:
		errs = append(errs, fmt.Errorf("cgroupDriver %q is neither cgroupfs nor systemd", k.CgroupDriver))
	}
	for _, s := range k.ClusterDNS {
		if net.ParseIP(s) == nil {
			errs = append(errs, fmt.Errorf("clusterDNS %q is not an IP address", s))
		}
	}
	if k.MaxPods < 0 {
		errs = append(errs, fmt.Errorf("maxPods %d is negative", k.MaxPods))
	}
	if k.SyncFrequency.Duration < 0 {
		errs = append(errs, fmt.Errorf("syncFrequency %s is negative", k.SyncFrequency.Duration))
	}
	return errs
}

// syncFrequency is how often a pod is synced when nothing happens to it.
func (c *Config) syncFrequency() time.Duration {
	if d := c.Kubelet.SyncFrequency.Duration; d > 0 {
		return d
	}
	return time.Minute
}

// cgroupsPerQOS tells whether pods get QoS and pod level cgroups.
func (c *Config) cgroupsPerQOS() bool {
	return c.Kubelet.CgroupsPerQOS == nil || *c.Kubelet.CgroupsPerQOS
}
