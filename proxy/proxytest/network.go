package proxytest

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/berthnode/berth/proxy"
)

// The example network, in both families. This node is node 1: its pods are
// 10.244.1.0/24 (fd00:10:244:1::/64), and pods on nodes 2 and 3 are remote.

// ServiceIP is the example cluster IP 10.96.0.n (fd00:96::n).
func ServiceIP(f proxy.Family, n int) netip.Addr {
	return pick(f, fmt.Sprintf("10.96.0.%d", n), fmt.Sprintf("fd00:96::%d", n))
}

// PodIP is pod n on node: 10.244.node.n (fd00:10:244:node::n).
func PodIP(f proxy.Family, node, n int) netip.Addr {
	return pick(f, fmt.Sprintf("10.244.%d.%d", node, n), fmt.Sprintf("fd00:10:244:%d::%d", node, n))
}

// NodeIP is this node's address, 192.168.0.1 (fd00:192::1).
func NodeIP(f proxy.Family) netip.Addr { return pick(f, "192.168.0.1", "fd00:192::1") }

// OtherNodeIP is another node's address, 192.168.0.2 (fd00:192::2).
func OtherNodeIP(f proxy.Family) netip.Addr { return pick(f, "192.168.0.2", "fd00:192::2") }

// ExternalIP is the example external address 203.0.113.n
// (2001:db8:113::n), of a client or of a service's externalIPs.
func ExternalIP(f proxy.Family, n int) netip.Addr {
	return pick(f, fmt.Sprintf("203.0.113.%d", n), fmt.Sprintf("2001:db8:113::%d", n))
}

// LoadBalancerIP is the example load-balancer address 198.51.100.n
// (2001:db8:100::n).
func LoadBalancerIP(f proxy.Family, n int) netip.Addr {
	return pick(f, fmt.Sprintf("198.51.100.%d", n), fmt.Sprintf("2001:db8:100::%d", n))
}

// ClusterCIDR is the pods' range, 10.244.0.0/16 (fd00:10:244::/48).
func ClusterCIDR(f proxy.Family) netip.Prefix {
	return pickPrefix(f, "10.244.0.0/16", "fd00:10:244::/48")
}

// NodeNet is the nodes' network, 192.168.0.0/24 (fd00:192::/64).
func NodeNet(f proxy.Family) netip.Prefix { return pickPrefix(f, "192.168.0.0/24", "fd00:192::/64") }

// ExternalNet is the clients' network, 203.0.113.0/24 (2001:db8:113::/64).
func ExternalNet(f proxy.Family) netip.Prefix {
	return pickPrefix(f, "203.0.113.0/24", "2001:db8:113::/64")
}

func pick(f proxy.Family, v4, v6 string) netip.Addr {
	if f == proxy.IPv6 {
		return netip.MustParseAddr(v6)
	}
	return netip.MustParseAddr(v4)
}

func pickPrefix(f proxy.Family, v4, v6 string) netip.Prefix {
	if f == proxy.IPv6 {
		return netip.MustParsePrefix(v6)
	}
	return netip.MustParsePrefix(v4)
}

// Endpoint is an example endpoint: pod n on node, serving port.
func Endpoint(f proxy.Family, node, n int, port uint16) proxy.Endpoint {
	return proxy.Endpoint{IP: PodIP(f, node, n), Port: port, Local: node == 1, Ready: true, Serving: true}
}

// Name is the ServicePortName of the example service port "ns/name:port".
func Name(s string, proto proxy.Protocol) proxy.ServicePortName {
	ns, rest, _ := strings.Cut(s, "/")
	name, port, _ := strings.Cut(rest, ":")
	return proxy.ServicePortName{Namespace: ns, Name: name, Port: port, Protocol: proto}
}

// ExampleState is a state with one service port of each kind berth
// programs, for the family:
//
//   - default/web:http        TCP  .10:80   3 endpoints (1.2 local, 2.2, 3.2), node port 30080
//   - default/sticky          TCP  .11:80   ClientIP affinity (3h) over 1.3 (local) and 2.3
//   - kube-system/kube-dns    UDP and TCP .53:53 over 1.4 and 2.4
//   - default/empty           TCP  .12:80   no endpoints, node port 30081, external IP 203.0.113.5
//   - default/local-lb        TCP  .13:80   eTP Local, LB 198.51.100.10 from 203.0.113.0/24 only,
//     node port 30082, cluster endpoints 1.5 (local) and 2.5, external 1.5, health check 32000
//   - default/local-none      TCP  .14:80   eTP Local without local endpoint (2.6), node port 30083
//   - default/itp-local       TCP  .15:80   iTP Local (1.7) but eTP Cluster (1.7, 2.7), node port 30084
//   - default/lb              TCP  .16:443  external IP 203.0.113.6, LB 198.51.100.11 from the
//     node network and 203.0.113.0/24, endpoints 2.8 and 3.8
//   - default/sctp            SCTP .17:9999 over 2.9
func ExampleState(f proxy.Family) *proxy.State {
	ep := func(node, n int, port uint16) proxy.Endpoint { return Endpoint(f, node, n, port) }
	eps := func(e ...proxy.Endpoint) []proxy.Endpoint { return e }
	svc := func(name string, proto proxy.Protocol, ip int, port uint16, cluster, external []proxy.Endpoint) proxy.ServicePort {
		return proxy.ServicePort{
			Name: Name(name, proto), Protocol: proto, ClusterIPs: []netip.Addr{ServiceIP(f, ip)}, Port: port,
			ClusterEndpoints: cluster, ExternalEndpoints: external,
		}
	}
	web := eps(ep(1, 2, 8080), ep(2, 2, 8080), ep(3, 2, 8080))
	s := []proxy.ServicePort{
		svc("default/web:http", proxy.TCP, 10, 80, web, web),
		svc("default/sticky", proxy.TCP, 11, 80, eps(ep(1, 3, 80), ep(2, 3, 80)), nil),
		svc("kube-system/kube-dns:dns", proxy.UDP, 53, 53, eps(ep(1, 4, 53), ep(2, 4, 53)), nil),
		svc("kube-system/kube-dns:dns-tcp", proxy.TCP, 53, 53, eps(ep(1, 4, 53), ep(2, 4, 53)), nil),
		svc("default/empty", proxy.TCP, 12, 80, nil, nil),
		svc("default/local-lb", proxy.TCP, 13, 80, eps(ep(1, 5, 8080), ep(2, 5, 8080)), eps(ep(1, 5, 8080))),
		svc("default/local-none", proxy.TCP, 14, 80, eps(ep(2, 6, 8080)), nil),
		svc("default/itp-local", proxy.TCP, 15, 80, eps(ep(1, 7, 8080)), eps(ep(1, 7, 8080), ep(2, 7, 8080))),
		svc("default/lb", proxy.TCP, 16, 443, eps(ep(2, 8, 8443), ep(3, 8, 8443)), eps(ep(2, 8, 8443), ep(3, 8, 8443))),
		svc("default/sctp", proxy.SCTP, 17, 9999, eps(ep(2, 9, 9999)), nil),
	}
	s[0].NodePort = 30080
	s[1].AffinityTimeout = 3 * time.Hour
	s[4].NodePort, s[4].ExternalIPs = 30081, []netip.Addr{ExternalIP(f, 5)}
	s[5].NodePort, s[5].LoadBalancerIPs = 30082, []netip.Addr{LoadBalancerIP(f, 10)}
	s[5].SourceRanges, s[5].ExternalLocal, s[5].HealthCheckNodePort = []netip.Prefix{ExternalNet(f)}, true, 32000
	s[6].NodePort, s[6].ExternalLocal, s[6].HealthCheckNodePort = 30083, true, 32001
	s[7].NodePort = 30084
	s[8].ExternalIPs, s[8].LoadBalancerIPs = []netip.Addr{ExternalIP(f, 6)}, []netip.Addr{LoadBalancerIP(f, 11)}
	s[8].SourceRanges = []netip.Prefix{NodeNet(f), ExternalNet(f)}
	SortServices(s)
	return &proxy.State{
		Family:       f,
		Services:     s,
		ClusterCIDRs: []netip.Prefix{ClusterCIDR(f)},
		NodeIPs:      []netip.Addr{NodeIP(f)},
	}
}

// SortServices sorts service ports by Name.Key(), as a State holds them.
func SortServices(s []proxy.ServicePort) {
	slices.SortFunc(s, func(a, b proxy.ServicePort) int { return strings.Compare(a.Name.Key(), b.Name.Key()) })
}

// Service returns the state's service port named "ns/name:port" of the
// protocol, or nil.
func Service(state *proxy.State, name string, proto proxy.Protocol) *proxy.ServicePort {
	key := Name(name, proto).Key()
	for i := range state.Services {
		if state.Services[i].Name.Key() == key {
			return &state.Services[i]
		}
	}
	return nil
}
