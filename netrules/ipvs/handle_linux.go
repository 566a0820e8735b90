package ipvs

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	mobyipvs "github.com/moby/ipvs"
	"golang.org/x/sys/unix"
)

// kernelHandle is a Handle over a generic netlink socket (github.com/moby/ipvs).
type kernelHandle struct {
	h *mobyipvs.Handle
}

// NewHandle opens an IPVS netlink handle in the network namespace of the
// calling thread. github.com/moby/ipvs runs "modprobe -va ip_vs" once per
// process before it opens the first handle.
func NewHandle() (Handle, error) {
	h, err := mobyipvs.New("")
	if err != nil {
		return nil, fmt.Errorf("opening the IPVS netlink socket: %w", err)
	}
	return &kernelHandle{h: h}, nil
}

// kernelError maps the kernel's "no such service" (ESRCH) and "no such
// destination" (ENOENT) to ErrNotFound, keeping the errno in the chain.
func kernelError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// GetServices implements Handle.
func (k *kernelHandle) GetServices() ([]Service, error) {
	ms, err := k.h.GetServices()
	if err != nil {
		return nil, kernelError("listing IPVS services", err)
	}
	out := make([]Service, 0, len(ms))
	for _, m := range ms {
		out = append(out, fromMobyService(m))
	}
	return out, nil
}

// GetDestinations implements Handle.
func (k *kernelHandle) GetDestinations(s Service) ([]Destination, error) {
	md, err := k.h.GetDestinations(toMobyService(s))
	if err != nil {
		return nil, kernelError("listing the destinations of "+s.String(), err)
	}
	out := make([]Destination, 0, len(md))
	for _, d := range md {
		out = append(out, fromMobyDestination(d))
	}
	return out, nil
}

// NewService implements Handle.
func (k *kernelHandle) NewService(s Service) error {
	return kernelError("adding "+s.String(), k.h.NewService(toMobyService(s)))
}

// UpdateService implements Handle.
func (k *kernelHandle) UpdateService(s Service) error {
	return kernelError("updating "+s.String(), k.h.UpdateService(toMobyService(s)))
}

// DelService implements Handle.
func (k *kernelHandle) DelService(s Service) error {
	return kernelError("deleting "+s.String(), k.h.DelService(toMobyService(s)))
}

// NewDestination implements Handle.
func (k *kernelHandle) NewDestination(s Service, d Destination) error {
	return kernelError("adding "+d.String()+" to "+s.String(), k.h.NewDestination(toMobyService(s), toMobyDestination(d)))
}

// UpdateDestination implements Handle.
func (k *kernelHandle) UpdateDestination(s Service, d Destination) error {
	return kernelError("updating "+d.String()+" of "+s.String(), k.h.UpdateDestination(toMobyService(s), toMobyDestination(d)))
}

// DelDestination implements Handle.
func (k *kernelHandle) DelDestination(s Service, d Destination) error {
	return kernelError("deleting "+d.String()+" of "+s.String(), k.h.DelDestination(toMobyService(s), toMobyDestination(d)))
}

func addressFamily(a netip.Addr) uint16 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func toMobyService(s Service) *mobyipvs.Service {
	return &mobyipvs.Service{
		Address:       net.IP(s.Addr.AsSlice()),
		Protocol:      protocolNumber(s.Protocol),
		Port:          s.Port,
		FWMark:        s.FWMark,
		SchedName:     s.Scheduler,
		Flags:         s.Flags,
		Timeout:       s.Timeout,
		Netmask:       s.Netmask,
		AddressFamily: addressFamily(s.Addr),
	}
}

func fromMobyService(m *mobyipvs.Service) Service {
	s := Service{
		Port:      m.Port,
		Protocol:  protocolOf(m.Protocol),
		FWMark:    m.FWMark,
		Scheduler: m.SchedName,
		Flags:     m.Flags,
		Timeout:   m.Timeout,
		Netmask:   m.Netmask,
	}
	if m.FWMark == 0 {
		if a, ok := netip.AddrFromSlice(m.Address); ok {
			s.Addr = a.Unmap()
		}
	}
	return s
}

func toMobyDestination(d Destination) *mobyipvs.Destination {
	return &mobyipvs.Destination{
		Address:         net.IP(d.Addr.AsSlice()),
		Port:            d.Port,
		Weight:          d.Weight,
		ConnectionFlags: d.ConnectionFlags,
		AddressFamily:   addressFamily(d.Addr),
	}
}

func fromMobyDestination(m *mobyipvs.Destination) Destination {
	d := Destination{
		Port:                m.Port,
		Weight:              m.Weight,
		ConnectionFlags:     m.ConnectionFlags,
		ActiveConnections:   m.ActiveConnections,
		InactiveConnections: m.InactiveConnections,
	}
	if a, ok := netip.AddrFromSlice(m.Address); ok {
		d.Addr = a.Unmap()
	}
	return d
}

// SetTimeouts implements Handle.
func (k *kernelHandle) SetTimeouts(t Timeouts) error {
	err := k.h.SetConfig(&mobyipvs.Config{TimeoutTCP: t.TCP, TimeoutTCPFin: t.TCPFin, TimeoutUDP: t.UDP})
	return kernelError("setting the IPVS timeouts", err)
}
