package link

import "github.com/vishvananda/netlink"

// NewRoutesForHandle lets the external contract test run the kernel
// implementation over a handle bound to a namespace the test created.
func NewRoutesForHandle(h *netlink.Handle) Routes {
	return newRoutes(h)
}
