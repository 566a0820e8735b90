package ipvs_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/netrules/ipvs"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// vs is a compact virtual service for comparisons: "TCP 10.96.0.10:80 rr
// [10.244.1.2:8080 w1, ...]".
type vs struct {
	Key     string
	Kind    ipvs.Kind
	Owner   string
	Sched   string
	Persist uint32
	Dests   []string
}

func compact(vss []ipvs.VirtualServer) []vs {
	var out []vs
	for _, v := range vss {
		c := vs{Key: v.Service.String(), Kind: v.Kind, Owner: v.Owner, Sched: v.Service.Scheduler}
		if v.Service.Flags&ipvs.FlagPersistent != 0 {
			c.Persist = v.Service.Timeout
		}
		for _, d := range v.Destinations {
			c.Dests = append(c.Dests, d.String()+" w"+string(rune('0'+d.Weight)))
		}
		out = append(out, c)
	}
	return out
}

func svcPort(name string, proto proxy.Protocol, ip string, port uint16) proxy.ServicePort {
	return proxy.ServicePort{Name: proxytest.Name(name, proto), Protocol: proto, ClusterIPs: []netip.Addr{netip.MustParseAddr(ip)}, Port: port}
}

func ep(ip string, port uint16) proxy.Endpoint {
	return proxy.Endpoint{IP: netip.MustParseAddr(ip), Port: port, Ready: true, Serving: true}
}

func TestPlan(t *testing.T) {
	node := netip.MustParseAddr("192.168.0.1")
	web := svcPort("default/web:http", proxy.TCP, "10.96.0.10", 80)
	web.ClusterEndpoints = []proxy.Endpoint{ep("10.244.1.2", 8080), ep("10.244.2.2", 8080), ep("10.244.1.2", 8080)}
	web.ExternalEndpoints = web.ClusterEndpoints[:2]
	web.NodePort = 30080
	web.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("2001:db8::5")}

	sticky := svcPort("default/sticky", proxy.UDP, "10.96.0.11", 53)
	sticky.AffinityTimeout = 1500 * time.Millisecond
	sticky.ClusterEndpoints = []proxy.Endpoint{ep("10.244.1.3", 53)}

	draining := svcPort("default/draining", proxy.TCP, "10.96.0.12", 80)
	term := ep("10.244.1.4", 80)
	term.Ready, term.Terminating = false, true
	draining.ClusterEndpoints = []proxy.Endpoint{ep("10.244.1.5", 80), term}

	onlyTerm := svcPort("default/only-terminating", proxy.TCP, "10.96.0.13", 80)
	onlyTerm.ClusterEndpoints = []proxy.Endpoint{term}

	local := svcPort("default/local", proxy.TCP, "10.96.0.14", 80)
	local.ExternalLocal, local.NodePort = true, 30090
	local.LoadBalancerIPs = []netip.Addr{netip.MustParseAddr("198.51.100.10")}
	local.ClusterEndpoints = []proxy.Endpoint{ep("10.244.2.6", 80)}

	// Two services claim the same external IP and port: the first wins.
	dup := svcPort("default/zz-dup", proxy.TCP, "10.96.0.15", 80)
	dup.ExternalIPs = []netip.Addr{netip.MustParseAddr("203.0.113.5")}

	state := &proxy.State{Family: proxy.IPv4, Services: []proxy.ServicePort{draining, local, onlyTerm, sticky, web, dup}}
	proxytest.SortServices(state.Services)
	got, notes, err := ipvs.Plan(state, ipvs.PlanOptions{Scheduler: "rr", NodePortAddrs: []netip.Addr{node}})
	if err != nil {
		t.Fatal(err)
	}
	const (
		dr, lo, ot, st, we, zz = "default/draining:/TCP", "default/local:/TCP", "default/only-terminating:/TCP",
			"default/sticky:/UDP", "default/web:http/TCP", "default/zz-dup:/TCP"
	)
	want := []vs{
		{Key: "TCP 10.96.0.12:80", Kind: ipvs.KindClusterIP, Owner: dr, Sched: "rr", Dests: []string{"10.244.1.5:80 w1", "10.244.1.4:80 w0"}},
		{Key: "TCP 10.96.0.14:80", Kind: ipvs.KindClusterIP, Owner: lo, Sched: "rr", Dests: []string{"10.244.2.6:80 w1"}},
		// Local without a local endpoint: the cluster endpoints, for the
		// node and its pods (the filter drops the others).
		{Key: "TCP 198.51.100.10:80", Kind: ipvs.KindLoadBalancerIP, Owner: lo, Sched: "rr", Dests: []string{"10.244.2.6:80 w1"}},
		{Key: "TCP 192.168.0.1:30090", Kind: ipvs.KindNodePort, Owner: lo, Sched: "rr", Dests: []string{"10.244.2.6:80 w1"}},
		// Only terminating endpoints: they are all there is, weight 1.
		{Key: "TCP 10.96.0.13:80", Kind: ipvs.KindClusterIP, Owner: ot, Sched: "rr", Dests: []string{"10.244.1.4:80 w1"}},
		{Key: "UDP 10.96.0.11:53", Kind: ipvs.KindClusterIP, Owner: st, Sched: "rr", Persist: 2, Dests: []string{"10.244.1.3:53 w1"}},
		{Key: "TCP 10.96.0.10:80", Kind: ipvs.KindClusterIP, Owner: we, Sched: "rr", Dests: []string{"10.244.1.2:8080 w1", "10.244.2.2:8080 w1"}},
		{Key: "TCP 203.0.113.5:80", Kind: ipvs.KindExternalIP, Owner: we, Sched: "rr", Dests: []string{"10.244.1.2:8080 w1", "10.244.2.2:8080 w1"}},
		{Key: "TCP 192.168.0.1:30080", Kind: ipvs.KindNodePort, Owner: we, Sched: "rr", Dests: []string{"10.244.1.2:8080 w1", "10.244.2.2:8080 w1"}},
		{Key: "TCP 10.96.0.15:80", Kind: ipvs.KindClusterIP, Owner: zz, Sched: "rr"},
	}
	if diff := cmp.Diff(want, compact(got)); diff != "" {
		t.Errorf("Plan (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"TCP 203.0.113.5:80 of default/zz-dup:/TCP is already default/web:http/TCP's"}, notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
}

func TestPlanServiceFields(t *testing.T) {
	for _, f := range []proxy.Family{proxy.IPv4, proxy.IPv6} {
		s := proxytest.ExampleState(f)
		got, _, err := ipvs.Plan(s, ipvs.PlanOptions{Scheduler: "wrr"})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range got {
			wantMask := uint32(0xffffffff)
			if f == proxy.IPv6 {
				wantMask = 128
			}
			if v.Service.Scheduler != "wrr" || v.Service.Netmask != wantMask {
				t.Errorf("IPv%d %s: scheduler %q netmask %#x", f, v.Service, v.Service.Scheduler, v.Service.Netmask)
			}
			sticky := v.Owner == proxytest.Name("default/sticky", proxy.TCP).Key()
			if persistent := v.Service.Flags&ipvs.FlagPersistent != 0; persistent != sticky || sticky && v.Service.Timeout != 3*3600 {
				t.Errorf("IPv%d %s: flags %#x timeout %d", f, v.Service, v.Service.Flags, v.Service.Timeout)
			}
			for _, d := range v.Destinations {
				if d.ConnectionFlags&ipvs.ForwardMask != ipvs.ForwardMasquerade || proxy.Of(d.Addr) != f {
					t.Errorf("IPv%d %s: destination %s flags %#x", f, v.Service, d, d.ConnectionFlags)
				}
			}
		}
	}
}

func TestPlanInvalid(t *testing.T) {
	bad := svcPort("default/bad", "ICMP", "10.96.0.1", 80)
	zero := svcPort("default/zero", proxy.TCP, "10.96.0.1", 0)
	noEPPort := svcPort("default/epport", proxy.TCP, "10.96.0.1", 80)
	noEPPort.ClusterEndpoints = []proxy.Endpoint{ep("10.244.1.1", 0)}
	twice := svcPort("default/twice", proxy.TCP, "10.96.0.1", 80)
	for name, s := range map[string]*proxy.State{
		"unknown protocol": {Family: proxy.IPv4, Services: []proxy.ServicePort{bad}},
		"port 0":           {Family: proxy.IPv4, Services: []proxy.ServicePort{zero}},
		"endpoint port 0":  {Family: proxy.IPv4, Services: []proxy.ServicePort{noEPPort}},
		"listed twice":     {Family: proxy.IPv4, Services: []proxy.ServicePort{twice, twice}},
		"no family":        {Services: nil},
	} {
		if _, _, err := ipvs.Plan(s, ipvs.PlanOptions{Scheduler: "rr"}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestNodePortAddresses(t *testing.T) {
	a := netip.MustParseAddr
	local := []ipvs.LocalAddr{
		{Addr: a("127.0.0.1"), Link: "lo", Loopback: true},
		{Addr: a("192.168.0.1"), Link: "eth0"},
		{Addr: a("10.0.0.1"), Link: "eth1"},
		{Addr: a("10.96.0.10"), Link: ipvs.DummyInterface},
		{Addr: a("fe80::1"), Link: "eth0"},
		{Addr: a("fd00::1"), Link: "eth0"},
	}
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		name     string
		family   proxy.Family
		prefixes []netip.Prefix
		nodeIPs  []netip.Addr
		want     []netip.Addr
	}{
		{name: "every local address", family: proxy.IPv4, want: []netip.Addr{a("10.0.0.1"), a("192.168.0.1")}},
		{name: "zero prefix", family: proxy.IPv4, prefixes: []netip.Prefix{p("192.168.0.0/24"), p("0.0.0.0/0")}, want: []netip.Addr{a("10.0.0.1"), a("192.168.0.1")}},
		{name: "restricted", family: proxy.IPv4, prefixes: []netip.Prefix{p("192.168.0.0/16"), p("fd00::/8")}, want: []netip.Addr{a("192.168.0.1")}},
		{name: "loopback prefix ignored", family: proxy.IPv4, prefixes: []netip.Prefix{p("127.0.0.0/8")}, want: []netip.Addr{}},
		{name: "node IPs too", family: proxy.IPv4, nodeIPs: []netip.Addr{a("172.16.0.1")}, want: []netip.Addr{a("10.0.0.1"), a("172.16.0.1"), a("192.168.0.1")}},
		{name: "other family prefixes only: every address", family: proxy.IPv6, prefixes: []netip.Prefix{p("10.0.0.0/8")}, want: []netip.Addr{a("fd00::1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &proxy.State{Family: tc.family, NodePortAddresses: tc.prefixes, NodeIPs: tc.nodeIPs}
			got := ipvs.NodePortAddresses(s, local)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
