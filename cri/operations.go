package cri

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// NewOperationsCounter returns kubelet's kubelet_runtime_operations_total
// counter (label operation_type): the CRI calls a node agent makes, which
// are containerd's work. It has kubelet's name and operation types so that
// a benchmark reads berth's and kubelet's counts the same way.
func NewOperationsCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "kubelet",
		Name:      "runtime_operations_total",
		Help:      "Cumulative number of runtime operations by operation type.",
	}, []string{"operation_type"})
}

// countingRuntime counts every call of the runtime service it wraps by
// kubelet's operation type. Methods that do not reach the runtime (Close)
// are not counted.
type countingRuntime struct {
	internalapi.RuntimeService
	ops *prometheus.CounterVec
}

func (r *countingRuntime) inc(op string) { r.ops.WithLabelValues(op).Inc() }

func (r *countingRuntime) Version(ctx context.Context, v string) (*runtimeapi.VersionResponse, error) {
	r.inc("version")
	return r.RuntimeService.Version(ctx, v)
}

func (r *countingRuntime) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	r.inc("status")
	return r.RuntimeService.Status(ctx, verbose)
}

func (r *countingRuntime) RuntimeConfig(ctx context.Context) (*runtimeapi.RuntimeConfigResponse, error) {
	r.inc("runtime_config")
	return r.RuntimeService.RuntimeConfig(ctx)
}

func (r *countingRuntime) UpdateRuntimeConfig(ctx context.Context, c *runtimeapi.RuntimeConfig) error {
	r.inc("update_runtime_config")
	return r.RuntimeService.UpdateRuntimeConfig(ctx, c)
}

func (r *countingRuntime) CreateContainer(ctx context.Context, sandboxID string, c *runtimeapi.ContainerConfig, sc *runtimeapi.PodSandboxConfig) (string, error) {
	r.inc("create_container")
	return r.RuntimeService.CreateContainer(ctx, sandboxID, c, sc)
}

func (r *countingRuntime) StartContainer(ctx context.Context, id string) error {
	r.inc("start_container")
	return r.RuntimeService.StartContainer(ctx, id)
}

func (r *countingRuntime) StopContainer(ctx context.Context, id string, timeout int64) error {
	r.inc("stop_container")
	return r.RuntimeService.StopContainer(ctx, id, timeout)
}

func (r *countingRuntime) RemoveContainer(ctx context.Context, id string) error {
	r.inc("remove_container")
	return r.RuntimeService.RemoveContainer(ctx, id)
}

func (r *countingRuntime) ListContainers(ctx context.Context, f *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	r.inc("list_containers")
	return r.RuntimeService.ListContainers(ctx, f)
}

func (r *countingRuntime) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	r.inc("container_status")
	return r.RuntimeService.ContainerStatus(ctx, id, verbose)
}

func (r *countingRuntime) UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.ContainerResources) error {
	r.inc("update_container")
	return r.RuntimeService.UpdateContainerResources(ctx, id, res)
}

func (r *countingRuntime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	r.inc("exec_sync")
	return r.RuntimeService.ExecSync(ctx, id, cmd, timeout)
}

func (r *countingRuntime) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	r.inc("exec")
	return r.RuntimeService.Exec(ctx, req)
}

func (r *countingRuntime) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	r.inc("attach")
	return r.RuntimeService.Attach(ctx, req)
}

func (r *countingRuntime) ReopenContainerLog(ctx context.Context, id string) error {
	r.inc("reopen_container_log")
	return r.RuntimeService.ReopenContainerLog(ctx, id)
}

func (r *countingRuntime) CheckpointContainer(ctx context.Context, o *runtimeapi.CheckpointContainerRequest) error {
	r.inc("checkpoint_container")
	return r.RuntimeService.CheckpointContainer(ctx, o)
}

func (r *countingRuntime) GetContainerEvents(ctx context.Context, ch chan *runtimeapi.ContainerEventResponse, cb func(runtimeapi.RuntimeService_GetContainerEventsClient)) error {
	r.inc("get_container_events")
	return r.RuntimeService.GetContainerEvents(ctx, ch, cb)
}

func (r *countingRuntime) RunPodSandbox(ctx context.Context, c *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	r.inc("run_podsandbox")
	return r.RuntimeService.RunPodSandbox(ctx, c, handler)
}

func (r *countingRuntime) StopPodSandbox(ctx context.Context, id string) error {
	r.inc("stop_podsandbox")
	return r.RuntimeService.StopPodSandbox(ctx, id)
}

func (r *countingRuntime) RemovePodSandbox(ctx context.Context, id string) error {
	r.inc("remove_podsandbox")
	return r.RuntimeService.RemovePodSandbox(ctx, id)
}

func (r *countingRuntime) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	r.inc("podsandbox_status")
	return r.RuntimeService.PodSandboxStatus(ctx, id, verbose)
}

func (r *countingRuntime) ListPodSandbox(ctx context.Context, f *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	r.inc("list_podsandbox")
	return r.RuntimeService.ListPodSandbox(ctx, f)
}

func (r *countingRuntime) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	r.inc("port_forward")
	return r.RuntimeService.PortForward(ctx, req)
}

func (r *countingRuntime) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	r.inc("update_podsandbox_resources")
	return r.RuntimeService.UpdatePodSandboxResources(ctx, req)
}

func (r *countingRuntime) CheckpointPod(ctx context.Context, o *runtimeapi.CheckpointPodRequest) error {
	r.inc("checkpoint_pod")
	return r.RuntimeService.CheckpointPod(ctx, o)
}

func (r *countingRuntime) RestorePod(ctx context.Context, o *runtimeapi.RestorePodRequest) (*runtimeapi.RestorePodResponse, error) {
	r.inc("restore_pod")
	return r.RuntimeService.RestorePod(ctx, o)
}

func (r *countingRuntime) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	r.inc("container_stats")
	return r.RuntimeService.ContainerStats(ctx, id)
}

func (r *countingRuntime) ListContainerStats(ctx context.Context, f *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	r.inc("list_container_stats")
	return r.RuntimeService.ListContainerStats(ctx, f)
}

func (r *countingRuntime) PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error) {
	r.inc("podsandbox_stats")
	return r.RuntimeService.PodSandboxStats(ctx, id)
}

func (r *countingRuntime) ListPodSandboxStats(ctx context.Context, f *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	r.inc("list_podsandbox_stats")
	return r.RuntimeService.ListPodSandboxStats(ctx, f)
}

func (r *countingRuntime) ListMetricDescriptors(ctx context.Context) ([]*runtimeapi.MetricDescriptor, error) {
	r.inc("list_metric_descriptors")
	return r.RuntimeService.ListMetricDescriptors(ctx)
}

func (r *countingRuntime) ListPodSandboxMetrics(ctx context.Context) ([]*runtimeapi.PodSandboxMetrics, error) {
	r.inc("list_podsandbox_metrics")
	return r.RuntimeService.ListPodSandboxMetrics(ctx)
}

// countingImages counts every call of the image service it wraps by
// kubelet's operation type.
type countingImages struct {
	internalapi.ImageManagerService
	ops *prometheus.CounterVec
}

func (s *countingImages) inc(op string) { s.ops.WithLabelValues(op).Inc() }

func (s *countingImages) ListImages(ctx context.Context, f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	s.inc("list_images")
	return s.ImageManagerService.ListImages(ctx, f)
}

func (s *countingImages) ImageStatus(ctx context.Context, img *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	s.inc("image_status")
	return s.ImageManagerService.ImageStatus(ctx, img, verbose)
}

func (s *countingImages) PullImage(ctx context.Context, img *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sc *runtimeapi.PodSandboxConfig) (string, error) {
	s.inc("pull_image")
	return s.ImageManagerService.PullImage(ctx, img, auth, sc)
}

func (s *countingImages) RemoveImage(ctx context.Context, img *runtimeapi.ImageSpec) error {
	s.inc("remove_image")
	return s.ImageManagerService.RemoveImage(ctx, img)
}

func (s *countingImages) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	s.inc("image_fs_info")
	return s.ImageManagerService.ImageFsInfo(ctx)
}
