package probe

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
)

// Result is the outcome of one probe.
type Result int

// The outcomes of a probe.
const (
	// Success: the container answered as healthy.
	Success Result = iota
	// Warning: a success with a remark (a redirect that was not followed).
	Warning
	// Failure: the container answered as unhealthy, or did not answer in
	// time.
	Failure
)

// String names the result.
func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case Warning:
		return "warning"
	default:
		return "failure"
	}
}

// userAgent is sent by HTTP and gRPC probes, as the kubelet's
// kube-probe/<major>.<minor>.
const userAgent = "kube-probe/1.37"

// Target is the container a probe runs against.
type Target struct {
	// Runtime runs exec probes in the container.
	Runtime Execer
	// ContainerID is the runtime's container ID.
	ContainerID string
	// Container is the container's spec; named ports are looked up there.
	Container *v1.Container
	// PodIP is the default host of network probes.
	PodIP string
}

// Run runs the probe handler h against t within timeout.
func Run(ctx context.Context, t Target, h *v1.ProbeHandler, timeout time.Duration) (Result, string, error) {
	switch {
	case h.Exec != nil:
		return Exec(ctx, t.Runtime, t.ContainerID, h.Exec.Command, timeout)
	case h.HTTPGet != nil:
		req, err := NewHTTPRequest(ctx, h.HTTPGet, t.PodIP, t.Container)
		if err != nil {
			return Failure, "", err
		}
		return HTTP(req, timeout)
	case h.TCPSocket != nil:
		port, err := ResolvePort(h.TCPSocket.Port, t.Container)
		if err != nil {
			return Failure, "", err
		}
		host := h.TCPSocket.Host
		if host == "" {
			host = t.PodIP
		}
		return TCP(ctx, host, port, timeout)
	case h.GRPC != nil:
		service := ""
		if h.GRPC.Service != nil {
			service = *h.GRPC.Service
		}
		return GRPC(ctx, t.PodIP, int(h.GRPC.Port), service, timeout)
	}
	return Failure, "", errors.New("probe has no handler")
}

// validPort checks a port number.
func validPort(port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d is out of range 1-65535", port)
	}
	return nil
}
