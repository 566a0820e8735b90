package cri

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxMsgSize matches the kubelet's limit for CRI messages (16 MiB): large
// ListContainers answers on busy nodes exceed gRPC's 4 MiB default.
const maxMsgSize = 16 << 20

// Client holds one connection to a CRI runtime and both its services.
type Client struct {
	// Runtime is the CRI runtime service.
	Runtime runtimeapi.RuntimeServiceClient
	// Image is the CRI image service.
	Image runtimeapi.ImageServiceClient
	conn  *grpc.ClientConn
}

// Dial connects to the CRI endpoint, a unix:// URL or a socket path. It does
// not wait for the runtime: the first call fails if it is not there.
func Dial(endpoint string) (*Client, error) {
	path, err := socketPath(endpoint)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to CRI endpoint %s: %w", endpoint, err)
	}
	return &Client{
		Runtime: runtimeapi.NewRuntimeServiceClient(conn),
		Image:   runtimeapi.NewImageServiceClient(conn),
		conn:    conn,
	}, nil
}

// socketPath returns the socket path of a unix:// endpoint or plain path.
func socketPath(endpoint string) (string, error) {
	path, found := strings.CutPrefix(endpoint, "unix://")
	if !found && strings.Contains(endpoint, "://") {
		return "", fmt.Errorf("CRI endpoint %q: only unix sockets are supported", endpoint)
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("CRI endpoint %q: socket path must be absolute", endpoint)
	}
	return path, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// versionBackoff is the pause between Version calls while the runtime does
// not answer: 50 ms doubling to 1 s, then every second.
var versionBackoff = wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Cap: time.Second, Steps: math.MaxInt32}

// WaitVersion calls Version until the runtime answers or timeout passes.
func (c *Client) WaitVersion(ctx context.Context, timeout time.Duration) (*runtimeapi.VersionResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var v *runtimeapi.VersionResponse
	var last error
	err := versionBackoff.DelayFunc().Until(ctx, true, true, func(ctx context.Context) (bool, error) {
		v, last = c.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
		return last == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("CRI runtime did not answer within %s: %w", timeout, errors.Join(last, err))
	}
	return v, nil
}
