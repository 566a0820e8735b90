package podresources

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// SocketName is the socket's name in <root>/pod-resources.
const SocketName = "kubelet.sock"

// The kubelet's rate limit of the API, over all callers: monitoring agents
// poll it, and a runaway one must not keep the node agent busy.
const (
	// QPS is the sustained rate of calls.
	QPS = 100
	// Burst is how many calls may come at once.
	Burst = 10
)

// errRateLimited is the kubelet's answer beyond the rate limit.
var errRateLimited = status.Error(codes.ResourceExhausted, "rejected by rate limit")

// Pods gives the node's pods.
type Pods interface {
	// Pods returns the pods the node runs, finished ones included.
	Pods() []*v1.Pod
}

// Devices gives the device plugins' devices.
type Devices interface {
	// PodDevices returns the devices of the pod's containers, by container
	// name and resource name.
	PodDevices(uid types.UID) map[string]map[string][]string
	// AllocatableDevices returns the healthy devices by resource name.
	AllocatableDevices() map[string][]*pluginapi.Device
}

// Config is what the server needs.
type Config struct {
	// Dir is <root>/pod-resources, where the socket is made.
	Dir string
	// Pods gives the node's pods; Devices their devices.
	Pods    Pods
	Devices Devices
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if !filepath.IsAbs(c.Dir) {
		errs = append(errs, fmt.Errorf("pod resources dir %q: not an absolute path", c.Dir))
	}
	if c.Pods == nil || c.Devices == nil {
		errs = append(errs, errors.New("pods and devices: required"))
	}
	return errors.Join(errs...)
}

// Server answers the PodResourcesLister service.
type Server struct {
	podresourcesapi.UnimplementedPodResourcesListerServer
	cfg Config
}

// New returns a server of cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pod resources config: %w", err)
	}
	return &Server{cfg: cfg}, nil
}

// SocketPath is the socket the server listens on.
func (s *Server) SocketPath() string { return filepath.Join(s.cfg.Dir, SocketName) }

// Run serves the socket until ctx ends. A socket left by an earlier run is
// replaced.
func (s *Server) Run(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.Dir, 0o750); err != nil {
		return fmt.Errorf("create pod resources dir: %w", err)
	}
	sock := s.SocketPath()
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove old pod resources socket: %w", err)
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen on pod resources socket: %w", err)
	}
	limiter := rate.NewLimiter(QPS, Burst)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !limiter.Allow() {
			return nil, errRateLimited
		}
		return handler(ctx, req)
	}))
	podresourcesapi.RegisterPodResourcesListerServer(srv, s)
	klog.FromContext(ctx).Info("Serving the pod resources API", "socket", sock)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		srv.Stop()
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("pod resources server: %w", err)
	}
}

// List returns the resources of every container of the active pods (not
// finished) and of their sidecars (restartable init containers), as the
// kubelet does.
func (s *Server) List(context.Context, *podresourcesapi.ListPodResourcesRequest) (*podresourcesapi.ListPodResourcesResponse, error) {
	out := &podresourcesapi.ListPodResourcesResponse{PodResources: []*podresourcesapi.PodResources{}}
	for _, pod := range s.cfg.Pods.Pods() {
		if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
			continue
		}
		out.PodResources = append(out.PodResources, s.podResources(pod))
	}
	return out, nil
}

// Get returns the resources of one pod.
func (s *Server) Get(_ context.Context, req *podresourcesapi.GetPodResourcesRequest) (*podresourcesapi.GetPodResourcesResponse, error) {
	for _, pod := range s.cfg.Pods.Pods() {
		if pod.Name == req.PodName && pod.Namespace == req.PodNamespace {
			return &podresourcesapi.GetPodResourcesResponse{PodResources: s.podResources(pod)}, nil
		}
	}
	return nil, fmt.Errorf("pod %s in namespace %s not found", req.PodName, req.PodNamespace)
}

// GetAllocatableResources returns the node's healthy devices.
func (s *Server) GetAllocatableResources(context.Context, *podresourcesapi.AllocatableResourcesRequest) (*podresourcesapi.AllocatableResourcesResponse, error) {
	out := &podresourcesapi.AllocatableResourcesResponse{}
	all := s.cfg.Devices.AllocatableDevices()
	for _, name := range sortedKeys(all) {
		for _, d := range all[name] {
			out.Devices = append(out.Devices, &podresourcesapi.ContainerDevices{
				ResourceName: name, DeviceIds: []string{d.ID}, Topology: topology(d.Topology),
			})
		}
	}
	return out, nil
}

// podResources lists the pod's sidecars and app containers with their
// devices.
func (s *Server) podResources(pod *v1.Pod) *podresourcesapi.PodResources {
	devs := s.cfg.Devices.PodDevices(pod.UID)
	out := &podresourcesapi.PodResources{Name: pod.Name, Namespace: pod.Namespace}
	add := func(c *v1.Container) {
		cr := &podresourcesapi.ContainerResources{Name: c.Name}
		for _, res := range sortedKeys(devs[c.Name]) {
			cr.Devices = append(cr.Devices, &podresourcesapi.ContainerDevices{ResourceName: res, DeviceIds: devs[c.Name][res]})
		}
		out.Containers = append(out.Containers, cr)
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			add(c)
		}
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i])
	}
	return out
}

// topology converts a device's NUMA nodes.
func topology(t *pluginapi.TopologyInfo) *podresourcesapi.TopologyInfo {
	if t == nil || len(t.Nodes) == 0 {
		return nil
	}
	out := &podresourcesapi.TopologyInfo{}
	for _, n := range t.Nodes {
		out.Nodes = append(out.Nodes, &podresourcesapi.NUMANode{ID: n.ID})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
