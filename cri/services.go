package cri

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
)

// Services are the CRI runtime and image services of one runtime, through
// k8s.io/cri-client (the client upstream kubelet uses).
type Services struct {
	// Runtime is the runtime service: sandboxes, containers, status.
	Runtime internalapi.RuntimeService
	// Images is the image service.
	Images internalapi.ImageManagerService
	// Operations counts the calls made through Runtime and Images, as
	// kubelet's kubelet_runtime_operations_total does.
	Operations *prometheus.CounterVec
}

// Connect connects to the runtime at endpoint (unix:///path). Each call
// times out after timeout. The calls are counted (see Instrument).
func Connect(ctx context.Context, endpoint string, timeout time.Duration) (*Services, error) {
	if _, err := socketPath(endpoint); err != nil {
		return nil, err
	}
	rt, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(timeout).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("CRI runtime service %s: %w", endpoint, err)
	}
	img, err := remote.NewRemoteImageServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(timeout).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("CRI image service %s: %w", endpoint, err)
	}
	return Instrument(&Services{Runtime: rt, Images: img}), nil
}

// Instrument returns s with its services wrapped to count every call in a
// new Operations counter.
func Instrument(s *Services) *Services {
	ops := NewOperationsCounter()
	return &Services{
		Runtime:    &countingRuntime{RuntimeService: s.Runtime, ops: ops},
		Images:     &countingImages{ImageManagerService: s.Images, ops: ops},
		Operations: ops,
	}
}
