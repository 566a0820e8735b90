package link

import (
	"errors"
	"fmt"
	"net/netip"
)

// Protocol is the route protocol number (rtm_protocol) that marks a route as
// berth's. 190 (0xbe) is unassigned in iproute2's rt_protos and in the
// kernel's RTPROT_* list.
const Protocol = 0xbe

var (
	// ErrInvalidRoute is returned for a Route the kernel would reject or
	// misread: an unmasked or missing destination, a missing gateway, or a
	// destination and gateway of different families.
	ErrInvalidRoute = errors.New("invalid route")

	// ErrForeignRoute is returned by Add when the destination is already
	// routed by a route berth did not create. berth leaves such a route alone
	// rather than replacing it.
	ErrForeignRoute = errors.New("destination routed by a route berth does not own")
)

// Route sends traffic for another node's pod CIDR to that node.
type Route struct {
	// Dst is the destination: the other node's pod CIDR, masked.
	Dst netip.Prefix
	// Gateway is the next hop: the other node's InternalIP, of the same
	// family as Dst and on a directly connected network.
	Gateway netip.Addr
}

// String formats the route the way `ip route` does: "10.244.1.0/24 via
// 192.168.1.12".
func (r Route) String() string {
	return r.Dst.String() + " via " + r.Gateway.String()
}

// Validate reports, wrapping ErrInvalidRoute, why the kernel would reject r
// or route it differently than written.
func (r Route) Validate() error {
	if err := r.validateDst(); err != nil {
		return err
	}
	return r.validateGateway()
}

// validateDst checks the half of a Route that Delete needs.
func (r Route) validateDst() error {
	switch {
	case !r.Dst.IsValid():
		return fmt.Errorf("%w: no destination", ErrInvalidRoute)
	case r.Dst.Addr().Is4In6():
		return fmt.Errorf("%w: destination %s is an IPv4-mapped IPv6 prefix", ErrInvalidRoute, r.Dst)
	case r.Dst != r.Dst.Masked():
		return fmt.Errorf("%w: destination %s has host bits set (want %s)", ErrInvalidRoute, r.Dst, r.Dst.Masked())
	}
	return nil
}

func (r Route) validateGateway() error {
	switch {
	case !r.Gateway.IsValid():
		return fmt.Errorf("%w: %s has no gateway", ErrInvalidRoute, r.Dst)
	case r.Gateway.Zone() != "":
		return fmt.Errorf("%w: gateway %s has a zone", ErrInvalidRoute, r.Gateway)
	case r.Gateway.Is4In6():
		return fmt.Errorf("%w: gateway %s is an IPv4-mapped IPv6 address", ErrInvalidRoute, r.Gateway)
	case r.Gateway.Is4() != r.Dst.Addr().Is4():
		return fmt.Errorf("%w: %s: destination and gateway of different families", ErrInvalidRoute, r)
	}
	return nil
}

// ValidateDelete is what Delete requires of r: a valid destination, and a
// gateway that is either valid or zero (zero matches any gateway).
func (r Route) ValidateDelete() error {
	if err := r.validateDst(); err != nil {
		return err
	}
	if !r.Gateway.IsValid() {
		return nil
	}
	return r.validateGateway()
}

// Routes manages berth's routes in the main routing table of one network
// namespace.
type Routes interface {
	// List returns berth's routes (those with route protocol Protocol in the
	// main table), in no particular order. Routes of other protocols are
	// never listed.
	List() ([]Route, error)
	// Add installs r, replacing a berth route to the same destination with
	// another gateway; adding a route that is already there is not an error.
	// A destination already routed by a route berth does not own fails with
	// ErrForeignRoute and leaves that route alone.
	Add(r Route) error
	// Delete removes berth's route to r.Dst via r.Gateway (via any gateway if
	// r.Gateway is zero). Deleting a route that is not there, or that is not
	// berth's, is not an error and changes nothing.
	Delete(r Route) error
}
