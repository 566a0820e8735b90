package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/berthnode/berth/proxy"
)

// The IPVS service flags berth reads and writes (include/uapi/linux/ip_vs.h).
const (
	// FlagPersistent is IP_VS_SVC_F_PERSISTENT: a client goes back to the
	// destination it used within the service's Timeout (session affinity).
	FlagPersistent uint32 = 0x0001
	// FlagHashed is IP_VS_SVC_F_HASHED, which the kernel sets on every
	// service it holds; berth ignores it when it compares flags.
	FlagHashed uint32 = 0x0002
)

// The forwarding methods of a destination (IP_VS_CONN_F_FWD_MASK bits).
const (
	// ForwardMask selects the forwarding method in ConnectionFlags.
	ForwardMask uint32 = 0x0007
	// ForwardMasquerade is NAT: the destination address is rewritten, the
	// method berth uses for every destination.
	ForwardMasquerade uint32 = 0x0000
)

// ErrNotFound is returned by a Handle for a service or destination the
// kernel does not hold.
var ErrNotFound = errors.New("no such IPVS service or destination")

// Service is one IPVS virtual service, as the kernel reports it or as berth
// programs it. A service is identified by Addr, Port and Protocol (FWMark
// services, which berth never makes, have no address).
type Service struct {
	// Addr is the virtual address; invalid for a firewall-mark service.
	Addr netip.Addr
	// Port is the virtual port.
	Port uint16
	// Protocol is TCP, UDP or SCTP; another protocol number is rendered as
	// "proto-N".
	Protocol proxy.Protocol
	// FWMark is the firewall mark of a mark-based service, 0 for others.
	FWMark uint32
	// Scheduler is the scheduler's name ("rr", "wrr", ...).
	Scheduler string
	// Flags are the service flags (FlagPersistent, ...).
	Flags uint32
	// Timeout is the persistence timeout in seconds.
	Timeout uint32
	// Netmask is the persistence granularity: a mask for IPv4, a prefix
	// length for IPv6.
	Netmask uint32
}

// Key identifies the service.
func (s Service) Key() ServiceKey {
	return ServiceKey{Addr: s.Addr, Port: s.Port, Protocol: s.Protocol}
}

// String renders "TCP 10.96.0.10:80", as ipvsadm lists services.
func (s Service) String() string { return s.Key().String() }

// ServiceKey identifies a virtual service: address, port, protocol.
type ServiceKey struct {
	// Addr is the virtual address.
	Addr netip.Addr
	// Port is the virtual port.
	Port uint16
	// Protocol is the transport protocol.
	Protocol proxy.Protocol
}

// String renders "TCP 10.96.0.10:80".
func (k ServiceKey) String() string {
	return fmt.Sprintf("%s %s", k.Protocol, netip.AddrPortFrom(k.Addr, k.Port))
}

// Destination is one real server of a virtual service.
type Destination struct {
	// Addr is where the traffic goes.
	Addr netip.Addr
	// Port is the port it goes to.
	Port uint16
	// Weight is the destination's share of new connections; 0 takes none
	// (a destination being drained).
	Weight int
	// ConnectionFlags hold the forwarding method (ForwardMask).
	ConnectionFlags uint32
	// ActiveConnections and InactiveConnections are the kernel's counters
	// of the connections to the destination; read only.
	ActiveConnections, InactiveConnections int
}

// AddrPort is the destination's address and port.
func (d Destination) AddrPort() netip.AddrPort { return netip.AddrPortFrom(d.Addr, d.Port) }

// String renders "10.244.1.2:8080".
func (d Destination) String() string { return d.AddrPort().String() }

// Handle reads and writes the kernel's IPVS table, one call per netlink
// request. NewHandle wraps github.com/moby/ipvs; netrules/ipvs/testing has a
// fake that keeps state. Flush is deliberately absent: berth never removes
// what it did not create.
type Handle interface {
	// GetServices lists every virtual service of the network namespace,
	// both families, berth's or not.
	GetServices() ([]Service, error)
	// GetDestinations lists the destinations of the service, with their
	// connection counters.
	GetDestinations(s Service) ([]Destination, error)
	// NewService creates the service (without destinations).
	NewService(s Service) error
	// UpdateService changes the scheduler, flags, timeout and netmask of
	// the service with s's key.
	UpdateService(s Service) error
	// DelService deletes the service and its destinations.
	DelService(s Service) error
	// NewDestination adds d to the service.
	NewDestination(s Service, d Destination) error
	// UpdateDestination changes the weight and forwarding of the
	// destination of the service with d's address and port.
	UpdateDestination(s Service, d Destination) error
	// DelDestination removes the destination from the service.
	DelDestination(s Service, d Destination) error
	// SetTimeouts sets the network namespace's IPVS session timeouts; a
	// zero one is left as it is.
	SetTimeouts(t Timeouts) error
}

// Timeouts are IPVS's idle timeouts of its sessions, for the whole network
// namespace (ipvsadm --set; KubeProxyConfiguration ipvs.tcpTimeout,
// tcpFinTimeout and udpTimeout). Zero leaves the kernel's value.
type Timeouts struct {
	// TCP is the timeout of established TCP sessions, TCPFin of those
	// after a FIN, UDP of UDP sessions.
	TCP, TCPFin, UDP time.Duration
}

// protocolNumber returns the IP protocol number of a protocol; 0 for one
// berth does not program.
func protocolNumber(p proxy.Protocol) uint16 {
	switch p {
	case proxy.TCP:
		return 6
	case proxy.UDP:
		return 17
	case proxy.SCTP:
		return 132
	}
	return 0
}

// protocolOf returns the protocol of an IP protocol number.
func protocolOf(n uint16) proxy.Protocol {
	switch n {
	case 6:
		return proxy.TCP
	case 17:
		return proxy.UDP
	case 132:
		return proxy.SCTP
	}
	return proxy.Protocol(fmt.Sprintf("proto-%d", n))
}
