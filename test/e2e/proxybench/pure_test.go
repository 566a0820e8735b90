package proxybench

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

// The tests below need neither root nor the bed.

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{in: "", want: []int{1000, 5000}},
		{in: "10000", want: []int{10000}},
		{in: " 1000, 5000 ,10000", want: []int{1000, 5000, 10000}},
		{in: "1000,", wantErr: true},
		{in: "0", wantErr: true},
		{in: "many", wantErr: true},
	} {
		got, err := parseSizes(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseSizes(%q) error %v, want error %t", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseSizes(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// pid (comm) state ppid ... utime stime cutime cstime ...
	stat := "4242 (kube let) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 700 30 20 0 12 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	want := cpuTimes{own: 3 * time.Second, children: 7300 * time.Millisecond}
	if got != want {
		t.Errorf("parseStatCPU = %+v, want %+v", got, want)
	}
	if _, err := parseStatCPU("4242 (x) S 1"); err == nil {
		t.Error("parseStatCPU accepted a short line")
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge
kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 1.7e+09
# TYPE kubeproxy_sync_proxy_rules_iptables_total gauge
kubeproxy_sync_proxy_rules_iptables_total{ip_family="IPv4",table="all"} 17042
# TYPE kubeproxy_sync_full_proxy_rules_duration_seconds histogram
kubeproxy_sync_full_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="+Inf"} 2
kubeproxy_sync_full_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 3.5
kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv4"} 2
# TYPE berth_proxy_sync_bytes histogram
berth_proxy_sync_bytes_bucket{ip_family="IPv4",le="+Inf"} 1
berth_proxy_sync_bytes_sum{ip_family="IPv4"} 2.5e+06
berth_proxy_sync_bytes_count{ip_family="IPv4"} 1
berth_proxy_sync_bytes_bucket{ip_family="IPv6",le="+Inf"} 1
berth_proxy_sync_bytes_sum{ip_family="IPv6"} 99
berth_proxy_sync_bytes_count{ip_family="IPv6"} 1
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 5.24288e+07
`
	got, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := proxyMetrics{
		lastSync:  time.Unix(1700000000, 0),
		rules:     17042,
		full:      histogram{count: 2, sum: 3.5},
		bytes:     histogram{count: 1, sum: 2.5e6},
		heapInuse: 50 << 20,
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(proxyMetrics{}, histogram{})); diff != "" {
		t.Errorf("parseMetrics (-want +got):\n%s", diff)
	}
}

func TestPodIPsAreDistinct(t *testing.T) {
	seen := map[netip.Addr]bool{}
	for i := range 10000 {
		for j := range endpointsPerService {
			ip := podIP(i, j)
			if seen[ip] || !netip.MustParsePrefix("10.244.0.0/16").Contains(ip) {
				t.Fatalf("podIP(%d, %d) = %s: reused or outside the pod CIDR", i, j, ip)
			}
			seen[ip] = true
		}
	}
	for f := range 1000 {
		if ip := flipIP(f); seen[ip] {
			t.Fatalf("flipIP(%d) = %s is an endpoint's address", f, ip)
		}
		seen[flipIP(f)] = true
	}
}

// benchCluster is n benchmark services in ns, with cluster IPs as the
// apiserver would assign them.
func benchCluster(ns string, n int) *cluster {
	c := &cluster{node: &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}}
	for i := range n {
		svc := newService(ns, i)
		svc.Spec.ClusterIP = fmt.Sprintf("10.96.1.%d", i+1)
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		c.svcs = append(c.svcs, svc)
		c.slices = append(c.slices, newEndpointSlice(ns, i))
	}
	return c
}

func TestBuildPayloads(t *testing.T) {
	view := proxyView{
		opts: proxy.Options{
			NodeName: "node1", NodeIPs: []netip.Addr{netip.MustParseAddr("192.168.200.11")},
			Families: []proxy.Family{proxy.IPv4}, ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		},
		render: iptables.RenderOptions{MasqueradeBit: iptables.DefaultMasqueradeBit},
	}
	p, err := buildPayloads(view, benchCluster("bench", 3), "bench", 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.endpointChains != 3*endpointsPerService {
		t.Errorf("endpoint chains = %d, want %d", p.endpointChains, 3*endpointsPerService)
	}
	var names []string
	for name, chain := range p.serviceChains {
		names = append(names, name)
		if !strings.HasPrefix(chain, iptables.ChainPrefix+"SVC-") {
			t.Errorf("service %s jumps to %q, want a service chain", name, chain)
		}
	}
	if diff := cmp.Diff([]string{"bench/svc-00000:http", "bench/svc-00001:http", "bench/svc-00002:http"}, slices.Sorted(slices.Values(names))); diff != "" {
		t.Errorf("service chains (-want +got):\n%s", diff)
	}
	// Per service, in its own chains: the masquerade rule and one rule per
	// endpoint in its service chain, two rules per endpoint chain.
	perService := 1 + endpointsPerService + 2*endpointsPerService
	for key, n := range p.full.ServiceRules {
		if n != perService {
			t.Errorf("service %s has %d rules, want %d", key, n, perService)
		}
	}
	if want := p.full.TopRules + 3*perService; p.rules != want {
		t.Errorf("rules = %d, want %d", p.rules, want)
	}
	flip := string(tableData(p.flip, xtables.TableNAT))
	if want := flipIP(0).String() + ":8080"; !strings.Contains(flip, want) {
		t.Errorf("the partial payload does not send to %s:\n%s", want, flip)
	}
	if strings.Contains(flip, p.serviceChains["bench/svc-00000:http"]+" -m comment") {
		t.Errorf("the partial payload rewrites an unchanged service:\n%s", flip)
	}
	if strings.Contains(flip, ":"+iptables.ChainServices+" ") || len(p.flip.Tables) != 1 {
		t.Errorf("the partial payload rewrites a top-level chain or the filter table:\n%s", flip)
	}
	if p.flip.Full || p.flip.Bytes() >= p.full.Bytes() {
		t.Errorf("the flip payload is full (%t) or not smaller (%d bytes, full %d)", p.flip.Full, p.flip.Bytes(), p.full.Bytes())
	}
}

func TestBuildPayloadsWithoutTheSlice(t *testing.T) {
	view := proxyView{opts: proxy.Options{NodeName: "node1", Families: []proxy.Family{proxy.IPv4}}}
	c := benchCluster("bench", 2)
	c.slices = []*discovery.EndpointSlice{c.slices[0]}
	if _, err := buildPayloads(view, c, "bench", 1); err == nil {
		t.Error("buildPayloads flipped a slice that does not exist")
	}
}

func tableData(p iptables.Payload, table xtables.Table) []byte {
	for _, t := range p.Tables {
		if t.Table == table {
			return t.Data
		}
	}
	return nil
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3}, 3},
		{[]time.Duration{5, 1, 3}, 3},
		{[]time.Duration{4, 1, 3, 2}, 2},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestHookPayload(t *testing.T) {
	got := string(hookPayload())
	var inserts int
	for line := range strings.Lines(got) {
		if strings.HasPrefix(line, "-I ") {
			inserts++
		}
	}
	if want := len(iptables.HookRules()); inserts != want {
		t.Errorf("hookPayload inserts %d rules, want %d:\n%s", inserts, want, got)
	}
	want := `-I PREROUTING 1 -m comment --comment "berth service portals" -j ` + iptables.ChainServices + "\n"
	if !strings.Contains(got, "*nat\n") || !strings.Contains(got, want) {
		t.Errorf("hookPayload lacks the nat table's %q:\n%s", want, got)
	}
}
