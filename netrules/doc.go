// Package netrules holds the only code of berth that touches the kernel's
// networking: iptables (an iptables-restore payload rendered and applied
// atomically), IPVS, and netlink links and routes. Each backend sits behind a
// small interface with a fake that keeps state, in netrules/<backend>/testing.
package netrules
