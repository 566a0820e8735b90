package iptables_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// benchState is n ClusterIP+NodePort services with 5 endpoints each.
func benchState(n int) *proxy.State {
	s := &proxy.State{
		Family:       proxy.IPv4,
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		NodeIPs:      []netip.Addr{netip.MustParseAddr("192.168.0.1")},
	}
	for i := range n {
		var eps []proxy.Endpoint
		for j := range 5 {
			eps = append(eps, proxy.Endpoint{IP: netip.AddrFrom4([4]byte{10, 244, byte(j), byte(i % 250)}), Port: 8080, Ready: true})
		}
		s.Services = append(s.Services, proxy.ServicePort{
			Name:     proxy.ServicePortName{Namespace: "bench", Name: fmt.Sprintf("svc-%05d", i), Port: "http", Protocol: proxy.TCP},
			Protocol: proxy.TCP, Port: 80, NodePort: uint16(30000 + i%2768),
			ClusterIPs:       []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})},
			ClusterEndpoints: eps, ExternalEndpoints: eps,
		})
	}
	proxytest.SortServices(s.Services)
	return s
}

// BenchmarkRender renders full payloads, partial ones (one service
// changed) and a Renderer's endpoint flips for 1k, 5k and 10k services of 5
// endpoints; bytes/payload is what iptables-restore would read.
func BenchmarkRender(b *testing.B) {
	o := iptables.RenderOptions{MasqueradeBit: iptables.DefaultMasqueradeBit}
	for _, n := range []int{1000, 5000, 10000} {
		s := benchState(n)
		full, err := iptables.Render(s, o, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		one := map[string]bool{s.Services[n/2].Name.Key(): true}
		// The Renderer's flip: one endpoint of one service moves.
		b.Run(fmt.Sprintf("services=%d/flip", n), func(b *testing.B) {
			r := iptables.NewRenderer(o)
			if _, err := r.Render(s, nil, nil); err != nil {
				b.Fatal(err)
			}
			sp := &s.Services[n/2]
			orig := sp.ClusterEndpoints[0].IP
			b.ReportAllocs()
			var p iptables.Payload
			for i := 0; b.Loop(); i++ {
				sp.ClusterEndpoints[0].IP = netip.AddrFrom4([4]byte{10, 245, byte(i >> 8), byte(i)})
				if p, err = r.Render(s, one, nil); err != nil {
					b.Fatal(err)
				}
			}
			sp.ClusterEndpoints[0].IP = orig
			b.ReportMetric(float64(p.Bytes()), "bytes/payload")
		})
		for _, tc := range []struct {
			name     string
			changed  map[string]bool
			existing iptables.ChainSet
		}{
			{"full", nil, nil},
			{"partial", one, full.Chains},
		} {
			b.Run(fmt.Sprintf("services=%d/%s", n, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				var p iptables.Payload
				for b.Loop() {
					if p, err = iptables.Render(s, o, tc.changed, tc.existing); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(p.Bytes()), "bytes/payload")
			})
		}
	}
}
