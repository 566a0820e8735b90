package nftables_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthnode/berth/netrules/nftables"
	"github.com/berthnode/berth/proxy"
)

func benchState(services int) *proxy.State {
	st := &proxy.State{Family: proxy.IPv4, ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.128.0.0/9")}}
	for i := range services {
		var eps []proxy.Endpoint
		for j := range 5 {
			eps = append(eps, proxy.Endpoint{IP: netip.AddrFrom4([4]byte{10, byte(128 + j), byte(i >> 8), byte(i)}), Port: 8080, Ready: true, Serving: true})
		}
		st.Services = append(st.Services, proxy.ServicePort{
			Name:     proxy.ServicePortName{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i), Protocol: proxy.TCP},
			Protocol: proxy.TCP, ClusterIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})}, Port: 80,
			ClusterEndpoints: eps, ExternalEndpoints: eps,
		})
	}
	return st
}

// BenchmarkBackend is a cold full sync and one endpoint flip (a partial
// sync of one service port) through the Backend, at 1,000, 5,000 and
// 10,000 services x 5 endpoints, in a namespace of its own.
func BenchmarkBackend(b *testing.B) {
	for _, n := range []int{1000, 5000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			requireRoot(b)
			ns := newTestNetns(b)
			st := benchState(n)
			ctx := context.Background()
			be, err := nftables.New(nftables.Config{Family: proxy.IPv4, MasqueradeBit: nftables.DefaultMasqueradeBit, NetNS: int(ns.NS)})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			b.Run("cold", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					start := time.Now()
					if _, err := be.Sync(ctx, st, nil); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms")
				}
				// The process's peak so far: the sizes run smallest first,
				// so this is the largest cold sync's.
				b.ReportMetric(peakRSSMiB(b), "peak-RSS-MiB")
				// What stays: the backend's memory of the table (and the
				// benchmark's States).
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-after-MiB")
			})
			// A flip replaces one endpoint of one service port (the
			// median of 11, each of another port).
			b.Run("flip", func(b *testing.B) {
				b.ReportAllocs()
				for k := 0; b.Loop(); k++ {
					var took []time.Duration
					for f := range 11 {
						sp := &st.Services[(f*997)%len(st.Services)]
						sp.ClusterEndpoints[0].IP = netip.AddrFrom4([4]byte{10, 200, byte(k), byte(f)})
						start := time.Now()
						if _, err := be.Sync(ctx, st, map[string]bool{sp.Name.Key(): true}); err != nil {
							b.Fatal(err)
						}
						took = append(took, time.Since(start))
					}
					slices.Sort(took)
					b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms")
				}
			})
		})
	}
}

// peakRSSMiB reads the process's peak resident set (VmHWM).
func peakRSSMiB(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
