package iptables_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/netrules/iptables"
	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// TestKernelContract runs the contract suite against the kernel's iptables
// (whichever backend "iptables" is), each subtest in a fresh network
// namespace.
func TestKernelContract(t *testing.T) {
	proxytest.RequireRoot(t)
	iptablestesting.RunContract(t, func(t *testing.T, f proxy.Family) iptablestesting.Subject {
		n := proxytest.NewNetns(t)
		return iptablestesting.Subject{Exec: nsExec{n}, Hooks: newNSHooks(t, n, f, "")}
	})
}

// The traffic test's topology: a node namespace (192.168.100.1) routing
// between a client (192.168.100.2) and three endpoint namespaces
// (10.244.i.2), programmed by the backend for the cluster IP 10.96.0.100.
func trafficVIP() netip.Addr { return netip.MustParseAddr("10.96.0.100") }

func trafficClient() netip.Prefix { return netip.MustParsePrefix("192.168.100.0/24") }

func trafficEndpoint(i int) netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", i))
}

// TestKernelTraffic sends real connections through the rules: 30 new TCP
// connections and 30 UDP flows to a cluster IP with 3 endpoints land 10 on
// each, in turn, masqueraded (the client is outside the cluster CIDR); the
// node port reaches them too.
func TestKernelTraffic(t *testing.T) {
	proxytest.RequireRoot(t)
	node, client := proxytest.NewNetns(t), proxytest.NewNetns(t)
	if err := link(node, client, "cl", trafficClient()); err != nil {
		t.Fatal(err)
	}
	if err := defaultRoute(client, trafficClient().Addr().Next()); err != nil {
		t.Fatal(err)
	}
	var eps []proxy.Endpoint
	for i := 1; i <= 3; i++ {
		ep := proxytest.NewNetns(t)
		p := trafficEndpoint(i)
		if err := link(node, ep, fmt.Sprintf("ep%d", i), p); err != nil {
			t.Fatal(err)
		}
		if err := defaultRoute(ep, p.Addr().Next()); err != nil {
			t.Fatal(err)
		}
		addr := p.Addr().Next().Next()
		serveEcho(t, ep, fmt.Sprintf("ep%d", i), addr)
		eps = append(eps, proxy.Endpoint{IP: addr, Port: 8080, Ready: true, Serving: true})
	}
	if err := node.Forward(); err != nil {
		t.Fatalf("enabling forwarding: %v", err)
	}
	b, err := iptables.New(iptables.Config{
		Family: proxy.IPv4, MasqueradeBit: iptables.DefaultMasqueradeBit, Exec: nsExec{node}, Hooks: newNSHooks(t, node, proxy.IPv4, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	state := &proxy.State{
		Family:       proxy.IPv4,
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		NodeIPs:      []netip.Addr{trafficClient().Addr().Next()},
		Services: []proxy.ServicePort{
			trafficService("tcp", proxy.TCP, 30080, eps),
			trafficService("udp", proxy.UDP, 30080, eps),
		},
	}
	if _, err := b.Sync(ktestingCtx(t), state, nil); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	// Endpoint i sees the node's address on its link: masqueraded.
	var want []string
	for k := range 30 {
		i := k%3 + 1
		want = append(want, fmt.Sprintf("ep%d %s", i, trafficEndpoint(i).Addr().Next()))
	}
	for _, proto := range []string{"tcp", "udp"} {
		got := dialMany(t, client, proto, netip.AddrPortFrom(trafficVIP(), 80), 30)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s connections to the cluster IP (-want +got):\n%s", proto, diff)
		}
	}
	// The node port shares the round robin of the cluster IP; after 30
	// connections it starts again at ep1.
	got := dialMany(t, client, "tcp", netip.AddrPortFrom(trafficClient().Addr().Next(), 30080), 3)
	if diff := cmp.Diff(want[:3], got); diff != "" {
		t.Errorf("connections to the node port (-want +got):\n%s", diff)
	}
}

func trafficService(port string, proto proxy.Protocol, nodePort uint16, eps []proxy.Endpoint) proxy.ServicePort {
	return proxy.ServicePort{
		Name:     proxy.ServicePortName{Namespace: "default", Name: "echo", Port: port, Protocol: proto},
		Protocol: proto, ClusterIPs: []netip.Addr{trafficVIP()}, Port: 80, NodePort: nodePort,
		ClusterEndpoints: eps, ExternalEndpoints: eps,
	}
}

// serveEcho answers each TCP connection and UDP datagram on addr:8080 in
// namespace n with "name peer-address".
func serveEcho(t *testing.T, n *proxytest.Netns, name string, addr netip.Addr) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	var err error
	n.Do(func() {
		if ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 8080).String()); err == nil {
			pc, err = net.ListenPacket("udp", netip.AddrPortFrom(addr, 8080).String())
		}
	})
	if err != nil {
		t.Fatalf("listening in %s: %v", name, err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			fmt.Fprintf(c, "%s %s\n", name, host)
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(from.String())
			pc.WriteTo([]byte(name+" "+host+"\n"), from)
		}
	}()
}

// dialMany opens count connections (UDP: sockets, each its own flow) from
// namespace n, one after the other, and returns the answers. Every socket
// stays open until the end, so that no two flows share a source port.
func dialMany(t *testing.T, n *proxytest.Netns, proto string, dst netip.AddrPort, count int) []string {
	t.Helper()
	var got []string
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range count {
		var c net.Conn
		var err error
		n.Do(func() { c, err = net.DialTimeout(proto, dst.String(), 2*time.Second) })
		if err != nil {
			t.Fatalf("dialing %s %s: %v", proto, dst, err)
		}
		conns = append(conns, c)
		if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if proto == "udp" {
			if _, err := c.Write([]byte("hi")); err != nil {
				t.Fatalf("writing to %s: %v", dst, err)
			}
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("reading from %s %s: %v", proto, dst, err)
		}
		got = append(got, strings.TrimSpace(line))
	}
	return got
}

// TestKernelContractLegacy runs the suite against iptables-legacy, which
// the backend must detect and stick to.
func TestKernelContractLegacy(t *testing.T) {
	proxytest.RequireRoot(t)
	if _, err := exec.LookPath("iptables-legacy-restore"); err != nil {
		t.Skip("skipping: iptables-legacy is not installed")
	}
	iptablestesting.RunContract(t, func(t *testing.T, f proxy.Family) iptablestesting.Subject {
		n := proxytest.NewNetns(t)
		h := newNSHooks(t, n, f, "-legacy")
		return iptablestesting.Subject{Exec: legacyExec{nsExec{n}}, Hooks: h}
	})
}

// legacyExec runs the legacy binaries for the plain names, as a node whose
// alternatives point at iptables-legacy would.
type legacyExec struct{ nsExec }

func (e legacyExec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	for _, base := range []string{"ip6tables", "iptables"} {
		if rest, ok := strings.CutPrefix(name, base); ok && !strings.HasPrefix(rest, "-nft") && !strings.HasPrefix(rest, "-legacy") {
			name = base + "-legacy" + rest
			break
		}
	}
	return e.nsExec.Run(ctx, stdin, name, args...)
}

// kernelSyncer is the backend programming a node namespace's iptables.
type kernelSyncer struct {
	t *testing.T
	b *iptables.Backend
}

func (k kernelSyncer) Sync(s *proxy.State) error {
	_, err := k.b.Sync(ktestingCtx(k.t), s, nil)
	return err
}

// TestKernelBehaviour plays the proxy's behaviour table through the
// kernel: real connections between namespaces, through the rules the
// backend programs (whichever backend "iptables" is).
func TestKernelBehaviour(t *testing.T) {
	proxytest.RunKernel(t, func(t *testing.T, f proxy.Family, node *proxytest.Netns) proxytest.Syncer {
		b, err := iptables.New(iptables.Config{
			Family: f, MasqueradeBit: iptables.DefaultMasqueradeBit, Exec: nsExec{node}, Hooks: newNSHooks(t, node, f, ""),
		})
		if err != nil {
			t.Fatal(err)
		}
		return kernelSyncer{t, b}
	}, Except)
}
