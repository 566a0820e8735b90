package testbed

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// bridgeName is the LAN bridge inside the LAN namespace.
const bridgeName = "br0"

// withNetlink calls fn with a netlink handle in host's network namespace.
func (tb *Testbed) withNetlink(host string, fn func(*netlink.Handle) error) error {
	ns, err := netns.GetFromPath(tb.nsFile(host, "net"))
	if err != nil {
		return fmt.Errorf("host %s: open network namespace: %w", host, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("host %s: netlink: %w", host, err)
	}
	defer h.Close()
	if err := fn(h); err != nil {
		return fmt.Errorf("host %s: %w", host, err)
	}
	return nil
}

// setUp brings the named link up.
func setUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	return nil
}

// setupLAN creates the bridge in the LAN namespace. The bridge has the LAN's
// gateway address so hosts can have a default route, but the namespace has
// no other link and does not forward: nothing sent on the LAN leaves it.
func (tb *Testbed) setupLAN() error {
	return tb.withNetlink(lanHost, func(h *netlink.Handle) error {
		if err := setUp(h, "lo"); err != nil {
			return err
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("add bridge: %w", err)
		}
		addr := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(lanGateway, lanPrefix.Bits()))}
		if err := h.AddrAdd(br, addr); err != nil {
			return fmt.Errorf("address bridge: %w", err)
		}
		return setUp(h, bridgeName)
	})
}

// connectHost plugs host into the LAN with a veth pair: eth0 with ip inside
// the host, v-HOST on the bridge.
func (tb *Testbed) connectHost(host string, ip netip.Addr) error {
	hostNS, err := netns.GetFromPath(tb.nsFile(host, "net"))
	if err != nil {
		return fmt.Errorf("host %s: open network namespace: %w", host, err)
	}
	defer hostNS.Close()
	err = tb.withNetlink(lanHost, func(h *netlink.Handle) error {
		br, err := h.LinkByName(bridgeName)
		if err != nil {
			return fmt.Errorf("find bridge: %w", err)
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: "v-" + host, MasterIndex: br.Attrs().Index},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(hostNS),
		}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth for %s: %w", host, err)
		}
		return setUp(h, veth.Name)
	})
	if err != nil {
		return err
	}
	return tb.withNetlink(host, func(h *netlink.Handle) error {
		for _, l := range []string{"lo", "eth0"} {
			if err := setUp(h, l); err != nil {
				return err
			}
		}
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(ip, lanPrefix.Bits()))}); err != nil {
			return fmt.Errorf("address eth0: %w", err)
		}
		route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.IP(lanGateway.AsSlice())}
		if err := h.RouteAdd(route); err != nil {
			return fmt.Errorf("default route: %w", err)
		}
		return nil
	})
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// DialContext opens a connection from inside host's network namespace, so
// that the test process can talk to the bed (the apiserver, a node) without
// any of the bed's addresses existing outside it. addr must be an IP
// literal and port: a name lookup would run outside the namespace.
func (tb *Testbed) DialContext(ctx context.Context, host, network, addr string) (net.Conn, error) {
	hostPart, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s on %s: %w", addr, host, err)
	}
	if _, err := netip.ParseAddr(hostPart); err != nil {
		return nil, fmt.Errorf("dial %s on %s: need an IP address: %w", addr, host, err)
	}
	target, err := os.Open(tb.nsFile(host, "net"))
	if err != nil {
		return nil, fmt.Errorf("dial %s on %s: %w", addr, host, err)
	}
	defer target.Close()

	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The socket is created in the namespace of the calling thread.
		// This thread is never unlocked, so it exits with the goroutine
		// rather than go back to the scheduler in the wrong namespace.
		runtime.LockOSThread()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		done <- result{conn, err}
	}()
	r := <-done
	if r.err != nil {
		return nil, fmt.Errorf("dial %s on %s: %w", addr, host, r.err)
	}
	return r.conn, nil
}

// netipParse parses an address recorded in the bed's state.
func netipParse(s string) (netip.Addr, error) { return netip.ParseAddr(s) }

// LAN is the bed's LAN, for machines a test attaches to it itself (VMs).
type LAN struct {
	// NetNS is the path of the network namespace that holds the bridge.
	NetNS string
	// Bridge is the LAN bridge's name in NetNS.
	Bridge string
	// Prefix is the LAN's prefix; Gateway the bridge's address (no route
	// leads further: nothing leaves the LAN).
	Prefix  netip.Prefix
	Gateway netip.Addr
}

// firstGuestIP is the first of the addresses kept for machines tests attach
// to the LAN (above the nodes').
var firstGuestIP = netip.MustParseAddr("192.168.200.100")

// LANHost names the host that holds the LAN bridge: it has a network
// namespace only, so a command run there (Command) reaches every host of the
// bed from the LAN and still sees the machine's files.
const LANHost = lanHost

// LAN describes the bed's LAN.
func (tb *Testbed) LAN() LAN {
	return LAN{NetNS: tb.nsFile(lanHost, "net"), Bridge: bridgeName, Prefix: lanPrefix, Gateway: lanGateway}
}

// GuestAddress returns the LAN address of the i-th (from 0) machine a test
// attaches to the LAN itself, with the LAN's prefix length.
func (tb *Testbed) GuestAddress(i int) netip.Prefix {
	a := firstGuestIP.As4()
	a[3] += byte(i)
	return netip.PrefixFrom(netip.AddrFrom4(a), lanPrefix.Bits())
}
