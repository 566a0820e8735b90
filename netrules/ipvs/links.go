package ipvs

import (
	"errors"
	"net/netip"

	"github.com/berthnode/berth/proxy"
)

// DummyInterface is the dummy interface that holds the virtual addresses
// (cluster, external and load-balancer IPs) so that the kernel takes their
// traffic as local and IPVS sees it. kube-proxy's is kube-ipvs0.
const DummyInterface = "berth-ipvs0"

// ErrNoSuchLink is returned by Links for an interface that does not exist.
var ErrNoSuchLink = errors.New("no such network interface")

// LocalAddr is an address assigned to one of the node's interfaces.
type LocalAddr struct {
	// Addr is the address.
	Addr netip.Addr
	// Link is the name of the interface holding it.
	Link string
	// Loopback tells that the interface is a loopback one.
	Loopback bool
}

// Links is the netlink side of the IPVS backend: the dummy interface and
// the node's addresses. NewLinks returns the kernel's; netrules/ipvs/testing
// has a fake. Only the dummy interface is ever changed.
type Links interface {
	// EnsureDummy creates the dummy interface name if it does not exist.
	// It leaves an existing one as it is (kube-proxy keeps kube-ipvs0
	// down: addresses on a down interface are still local).
	EnsureDummy(name string) error
	// Addrs lists the addresses of the family on the interface name;
	// ErrNoSuchLink when it does not exist.
	Addrs(name string, f proxy.Family) ([]netip.Addr, error)
	// AddAddr assigns a as a host address (/32, /128) to the interface;
	// an address it already has is not an error.
	AddAddr(name string, a netip.Addr) error
	// DelAddr removes a from the interface; an address it does not have is
	// not an error.
	DelAddr(name string, a netip.Addr) error
	// LocalAddrs lists the addresses of the family on every interface.
	LocalAddrs(f proxy.Family) ([]LocalAddr, error)
}
