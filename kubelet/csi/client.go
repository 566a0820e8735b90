package csi

import (
	"context"
	"fmt"
	"net"
	"strings"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// driver is a registered CSI driver: its connection and what its node
// service said about itself at registration.
type driver struct {
	// name is the driver's name.
	name string
	// endpoint is the socket of its CSI services.
	endpoint string
	// conn is the gRPC connection to endpoint.
	conn *grpc.ClientConn
	// node is the driver's node service over conn.
	node csipb.NodeClient
	// caps are the node service's RPC capabilities.
	caps map[csipb.NodeServiceCapability_RPC_Type]bool
	// nodeID, maxVolumes and topology are the NodeGetInfo answer.
	nodeID     string
	maxVolumes int64
	topology   map[string]string
}

// has tells whether the driver's node service has capability c.
func (d *driver) has(c csipb.NodeServiceCapability_RPC_Type) bool { return d.caps[c] }

// dial connects to a driver's Unix socket. The connection is lazy: a
// driver that is not listening fails on the first call.
func dial(endpoint string) (*grpc.ClientConn, error) {
	path := strings.TrimPrefix(endpoint, "unix://")
	conn, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithAuthority("localhost"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	return conn, nil
}

// probe asks a freshly dialled driver for its node capabilities and node
// info, as the kubelet does at registration.
func probe(ctx context.Context, d *driver) error {
	caps, err := d.node.NodeGetCapabilities(ctx, &csipb.NodeGetCapabilitiesRequest{})
	if err != nil {
		return fmt.Errorf("NodeGetCapabilities: %w", err)
	}
	d.caps = map[csipb.NodeServiceCapability_RPC_Type]bool{}
	for _, c := range caps.GetCapabilities() {
		if rpc := c.GetRpc(); rpc != nil {
			d.caps[rpc.GetType()] = true
		}
	}
	info, err := d.node.NodeGetInfo(ctx, &csipb.NodeGetInfoRequest{})
	if err != nil {
		return fmt.Errorf("NodeGetInfo: %w", err)
	}
	if info.GetNodeId() == "" {
		return fmt.Errorf("NodeGetInfo: driverNodeID must not be empty")
	}
	d.nodeID = info.GetNodeId()
	d.maxVolumes = info.GetMaxVolumesPerNode()
	d.topology = info.GetAccessibleTopology().GetSegments()
	return nil
}
