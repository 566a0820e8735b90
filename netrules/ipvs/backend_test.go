package ipvs_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"

	ipt "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/ipvs"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

func families(t *testing.T, run func(t *testing.T, f proxy.Family)) {
	for _, f := range []proxy.Family{proxy.IPv4, proxy.IPv6} {
		t.Run(fmt.Sprintf("IPv%d", f), func(t *testing.T) { run(t, f) })
	}
}

func newNode(t *testing.T, f proxy.Family) *ipvstesting.Node {
	return ipvstesting.NewNode(t, f, ipvstesting.ExampleVIPs(f)...)
}

func newBackend(t *testing.T, n *ipvstesting.Node, mod ...func(*ipvs.Config)) *ipvs.Backend {
	t.Helper()
	cfg := n.Config()
	for _, m := range mod {
		m(&cfg)
	}
	b, err := ipvs.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// table renders the fake's IPVS table of the family compactly:
// "TCP 10.96.0.10:80 rr" -> ["10.244.1.2:8080 w1", ...].
func table(n *ipvstesting.Node) map[string][]string {
	out := map[string][]string{}
	for _, v := range n.IPVS.Dump() {
		if !v.Service.Addr.IsValid() || proxy.Of(v.Service.Addr) != n.Family {
			continue
		}
		k := v.Service.String() + " " + v.Service.Scheduler
		if v.Service.Flags&ipvs.FlagPersistent != 0 {
			k += fmt.Sprintf(" persistent %ds", v.Service.Timeout)
		}
		out[k] = []string{}
		for _, d := range v.Destinations {
			out[k] = append(out[k], fmt.Sprintf("%s w%d", d, d.Weight))
		}
	}
	return out
}

// want is the table a State asks for on the node.
func want(t *testing.T, n *ipvstesting.Node, s *proxy.State, sched string) map[string][]string {
	t.Helper()
	vss, _, err := ipvs.Plan(s, ipvs.PlanOptions{Scheduler: sched, NodePortAddrs: []netip.Addr{proxytest.NodeIP(n.Family)}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, v := range vss {
		k := v.Service.String() + " " + sched
		if v.Service.Flags&ipvs.FlagPersistent != 0 {
			k += fmt.Sprintf(" persistent %ds", v.Service.Timeout)
		}
		out[k] = []string{}
		for _, d := range v.Destinations {
			out[k] = append(out[k], fmt.Sprintf("%s w%d", d, d.Weight))
		}
	}
	return out
}

// check compares the node's IPVS table and dummy interface with what s
// asks for.
func check(t *testing.T, n *ipvstesting.Node, s *proxy.State) {
	t.Helper()
	if diff := cmp.Diff(want(t, n, s, "rr"), table(n)); diff != "" {
		t.Errorf("IPVS table (-want +got):\n%s", diff)
	}
	var vips []netip.Addr
	for _, sp := range s.Services {
		for _, l := range [][]netip.Addr{sp.ClusterIPs, sp.ExternalIPs, sp.LoadBalancerIPs} {
			for _, a := range l {
				if proxy.Of(a) == n.Family && !slices.Contains(vips, a) {
					vips = append(vips, a)
				}
			}
		}
	}
	slices.SortFunc(vips, netip.Addr.Compare)
	got := n.Links.LinkAddrs(ipvs.DummyInterface)
	if len(vips) == 0 {
		vips = nil
	}
	if len(got) == 0 {
		got = nil
	}
	if diff := cmp.Diff(vips, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("%s addresses (-want +got):\n%s", ipvs.DummyInterface, diff)
	}
}

func TestFullSync(t *testing.T) {
	families(t, func(t *testing.T, f proxy.Family) {
		n := newNode(t, f)
		b := newBackend(t, n)
		s := proxytest.ExampleState(f)
		// The proxier asks a full first sync; a partial one is refused.
		refused(t, n, b, s)
		res := ipvstesting.SyncOK(t, b, s, nil)
		if !res.Full {
			t.Error("first sync: Full = false")
		}
		check(t, n, s)
		if diff := cmp.Diff([]netip.Addr{proxytest.NodeIP(f)}, n.Links.LinkAddrs("eth0"), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("eth0 changed (-want +got):\n%s", diff)
		}
		if !slices.Contains(n.Links.Calls(), "EnsureDummy "+ipvs.DummyInterface) {
			t.Errorf("the dummy interface was not created: %q", n.Links.Calls())
		}
		// Every hook once, after two full syncs.
		ipvstesting.SyncOK(t, b, s, nil)
		for _, h := range ipvs.HookRules() {
			rules := ipt.Rules(n.IPTables.Save(f, h.Table))[string(h.Table)+" "+h.Chain]
			count := 0
			for _, r := range rules {
				if strings.HasSuffix(r, "-j "+h.Rule[len(h.Rule)-1]) {
					count++
				}
			}
			if count != 1 {
				t.Errorf("%s %s holds %d jumps to %s: %q", h.Table, h.Chain, count, h.Rule[len(h.Rule)-1], rules)
			}
		}
	})
}

func TestSyncIdempotent(t *testing.T) {
	families(t, func(t *testing.T, f proxy.Family) {
		n := newNode(t, f)
		b := newBackend(t, n)
		s := proxytest.ExampleState(f)
		ipvstesting.SyncOK(t, b, s, nil)
		n.IPVS.ResetCalls()
		n.Links.ResetCalls()
		// A second full sync reads the kernel back and changes nothing.
		res := ipvstesting.SyncOK(t, b, s, nil)
		if w := n.IPVS.Writes(); len(w) != 0 {
			t.Errorf("second full sync changed IPVS: %q", w)
		}
		if c := n.Links.Calls(); len(c) != 0 {
			t.Errorf("second full sync changed links: %q", c)
		}
		// A partial sync of nothing makes no call at all.
		n.IPVS.ResetCalls()
		restores := n.IPTables.Restores()
		res2 := ipvstesting.SyncOK(t, b, s, map[string]bool{})
		if c := n.IPVS.Calls(); len(c) != 0 {
			t.Errorf("empty partial sync made IPVS calls: %q", c)
		}
		if r := n.IPTables.Restores(); r != restores {
			t.Errorf("empty partial sync ran iptables-restore %d times", r-restores)
		}
		if res2.Full || res2.Rules != res.Rules {
			t.Errorf("partial sync result %+v, full %+v", res2, res)
		}
		check(t, n, s)
	})
}

func TestPartialSync(t *testing.T) {
	families(t, func(t *testing.T, f proxy.Family) {
		n := newNode(t, f)
		b := newBackend(t, n)
		s := proxytest.ExampleState(f)
		ipvstesting.SyncOK(t, b, s, nil)
		n.IPVS.ResetCalls()
		n.Links.ResetCalls()
		web := proxytest.Service(s, "default/web:http", proxy.TCP)
		web.ClusterEndpoints = append(web.ClusterEndpoints[:2:2], proxytest.Endpoint(f, 3, 20, 8080))
		web.ExternalEndpoints = web.ClusterEndpoints
		res := ipvstesting.SyncOK(t, b, s, map[string]bool{web.Name.Key(): true})
		if res.Full {
			t.Error("partial sync: Full = true")
		}
		check(t, n, s)
		webVS := []string{
			ipvs.ServiceKey{Addr: proxytest.ServiceIP(f, 10), Port: 80, Protocol: proxy.TCP}.String(),
			ipvs.ServiceKey{Addr: proxytest.NodeIP(f), Port: 30080, Protocol: proxy.TCP}.String(),
		}
		for _, c := range n.IPVS.Calls() {
			if !slices.ContainsFunc(webVS, func(k string) bool { return strings.Contains(c, k) }) {
				t.Errorf("partial sync of web touched another service: %q", c)
			}
		}
		// The old endpoint had no connections: deleted, not drained.
		if d := b.Draining(); len(d) != 0 {
			t.Errorf("draining %q", d)
		}

		// A service port removed in a partial sync: its virtual services
		// and addresses go, the others stay.
		var kept []proxy.ServicePort
		changed := map[string]bool{}
		for _, sp := range s.Services {
			if sp.Name.Name == "lb" || sp.Name.Name == "sticky" {
				changed[sp.Name.Key()] = true
				continue
			}
			kept = append(kept, sp)
		}
		s.Services = kept
		n.IPVS.ResetCalls()
		ipvstesting.SyncOK(t, b, s, changed)
		check(t, n, s)
		for _, c := range n.IPVS.Writes() {
			if !strings.HasPrefix(c, "DelService") {
				t.Errorf("removing two services made %q", c)
			}
		}
		// And nothing is left once every service is gone.
		clear(changed)
		for _, sp := range s.Services {
			changed[sp.Name.Key()] = true
		}
		s.Services = nil
		ipvstesting.SyncOK(t, b, s, changed)
		check(t, n, s)
	})
}

func TestForeignServicesSurvive(t *testing.T) {
	families(t, func(t *testing.T, f proxy.Family) {
		n := newNode(t, f)
		other := proxytest.OtherNodeIP(f)
		foreign := []ipvs.Service{
			// Another load balancer's service on an address of its own.
			{Addr: other, Port: 80, Protocol: proxy.TCP, Scheduler: "wlc", Netmask: 0xffffffff},
			// One on the node's address, outside the node-port range.
			{Addr: proxytest.NodeIP(f), Port: 8443, Protocol: proxy.TCP, Scheduler: "rr", Netmask: 0xffffffff},
			// A firewall-mark service.
			{FWMark: 7, Protocol: proxy.TCP, Scheduler: "rr"},
		}
		for _, s := range foreign[:2] {
			if err := n.IPVS.NewService(s); err != nil {
				t.Fatal(err)
			}
			if err := n.IPVS.NewDestination(s, ipvs.Destination{Addr: other, Port: 9000, Weight: 5}); err != nil {
				t.Fatal(err)
			}
		}
		n.Links.AddLink("eth1", false, other)
		before := n.IPVS.Dump()
		b := newBackend(t, n)
		s := proxytest.ExampleState(f)
		ipvstesting.SyncOK(t, b, s, nil)
		s.Services = nil
		ipvstesting.SyncOK(t, b, s, nil)
		if diff := cmp.Diff(before, n.IPVS.Dump(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("foreign services changed (-before +after):\n%s", diff)
		}
		if got := n.Links.LinkAddrs("eth1"); len(got) != 1 || got[0] != other {
			t.Errorf("eth1 addresses changed: %v", got)
		}
	})
}

func TestStaleServicesOfAnEarlierRunGo(t *testing.T) {
	families(t, func(t *testing.T, f proxy.Family) {
		n := newNode(t, f)
		s := proxytest.ExampleState(f)
		ipvstesting.SyncOK(t, newBackend(t, n), s, nil)
		// A new berth (a restart) with fewer services removes what the
		// earlier one left: it finds it on the dummy interface's addresses
		// and on the node's address in the node-port range.
		s.Services = s.Services[:2]
		ipvstesting.SyncOK(t, newBackend(t, n), s, nil)
		check(t, n, s)
	})
}

func TestFullSyncRepairs(t *testing.T) {
	n := newNode(t, proxy.IPv4)
	b := newBackend(t, n)
	s := proxytest.ExampleState(proxy.IPv4)
	ipvstesting.SyncOK(t, b, s, nil)
	web := ipvs.Service{Addr: proxytest.ServiceIP(proxy.IPv4, 10), Port: 80, Protocol: proxy.TCP}
	dns := ipvs.Service{Addr: proxytest.ServiceIP(proxy.IPv4, 53), Port: 53, Protocol: proxy.UDP}
	// Someone tampers: a destination's weight, a scheduler, a deleted
	// service, an extra destination, a removed address.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(n.IPVS.UpdateDestination(web, ipvs.Destination{Addr: proxytest.PodIP(proxy.IPv4, 2, 2), Port: 8080, Weight: 7}))
	must(n.IPVS.UpdateService(ipvs.Service{Addr: web.Addr, Port: 80, Protocol: proxy.TCP, Scheduler: "lc", Netmask: 0xffffffff}))
	must(n.IPVS.DelService(dns))
	must(n.IPVS.NewDestination(web, ipvs.Destination{Addr: proxytest.PodIP(proxy.IPv4, 9, 9), Port: 1}))
	must(n.Links.DelAddr(ipvs.DummyInterface, proxytest.ServiceIP(proxy.IPv4, 11)))
	ipvstesting.SyncOK(t, b, s, nil)
	check(t, n, s)
}

func TestRoundRobin(t *testing.T) {
	families(t, func(t *testing.T, f proxy.Family) {
		n := newNode(t, f)
		b := newBackend(t, n)
		s := proxytest.ExampleState(f)
		web := proxytest.Service(s, "default/web:http", proxy.TCP)
		web.ClusterEndpoints = append(web.ClusterEndpoints, proxytest.Endpoint(f, 2, 30, 8080), proxytest.Endpoint(f, 3, 30, 8080))
		ipvstesting.SyncOK(t, b, s, nil)
		key := ipvs.ServiceKey{Addr: proxytest.ServiceIP(f, 10), Port: 80, Protocol: proxy.TCP}
		v, ok := n.IPVS.Service(key)
		if !ok {
			t.Fatal("no virtual service for web")
		}
		if v.Service.Scheduler != "rr" {
			t.Errorf("scheduler %q, want rr", v.Service.Scheduler)
		}
		var eps []netip.AddrPort
		for _, ep := range web.ClusterEndpoints {
			eps = append(eps, netip.AddrPortFrom(ep.IP, ep.Port))
		}
		var dests []netip.AddrPort
		for _, d := range v.Destinations {
			dests = append(dests, d.AddrPort())
			if d.Weight != 1 || d.ConnectionFlags&ipvs.ForwardMask != ipvs.ForwardMasquerade {
				t.Errorf("destination %s: weight %d, flags %#x", d, d.Weight, d.ConnectionFlags)
			}
		}
		if diff := cmp.Diff(eps, dests, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("destinations (-endpoints +got):\n%s", diff)
		}
		// Connection k goes to destination k mod n: each gets its turn.
		const rounds = 4
		count := map[netip.AddrPort]int{}
		for k := range rounds * len(eps) {
			got, ok := n.IPVS.Connect(key, proxytest.ExternalIP(f, 100+k))
			if !ok || got != dests[k%len(dests)] {
				t.Fatalf("connection %d went to %v, want %v", k, got, dests[k%len(dests)])
			}
			count[got]++
		}
		for _, ep := range eps {
			if count[ep] != rounds {
				t.Errorf("%s got %d connections, want %d", ep, count[ep], rounds)
			}
		}
	})
}

func TestScheduler(t *testing.T) {
	n := newNode(t, proxy.IPv4)
	b := newBackend(t, n, func(c *ipvs.Config) { c.Scheduler = "wrr" })
	s := proxytest.ExampleState(proxy.IPv4)
	ipvstesting.SyncOK(t, b, s, nil)
	if diff := cmp.Diff(want(t, n, s, "wrr"), table(n)); diff != "" {
		t.Errorf("IPVS table (-want +got):\n%s", diff)
	}
}

func TestTamperedRulesMendedByFullSync(t *testing.T) {
	n := newNode(t, proxy.IPv4)
	b := newBackend(t, n)
	s := proxytest.ExampleState(proxy.IPv4)
	ipvstesting.SyncOK(t, b, s, nil)
	want := n.IPTables.Save(proxy.IPv4, xtables.TableNAT)
	foreign := "*nat\n:FOREIGN - [0:0]\n-A FOREIGN -j RETURN\n-F " + ipvs.ChainServices +
		"\n-D PREROUTING -m comment --comment \"berth IPVS service portals\" -j " + ipvs.ChainServices + "\nCOMMIT\n"
	if _, err := n.IPTables.Run(t.Context(), []byte(foreign), "iptables-restore", "--noflush"); err != nil {
		t.Fatal(err)
	}
	ipvstesting.SyncOK(t, b, s, nil)
	got := ipt.Rules(n.IPTables.Save(proxy.IPv4, xtables.TableNAT))
	for k, rules := range ipt.Rules(want) {
		if diff := cmp.Diff(rules, got[k]); diff != "" {
			t.Errorf("%s not mended (-want +got):\n%s", k, diff)
		}
	}
	if _, ok := got["nat FOREIGN"]; !ok {
		t.Error("a foreign chain was removed")
	}
}

func TestNodeAddressChange(t *testing.T) {
	n := newNode(t, proxy.IPv4)
	b := newBackend(t, n)
	s := proxytest.ExampleState(proxy.IPv4)
	ipvstesting.SyncOK(t, b, s, nil)
	newIP := netip.MustParseAddr("192.168.0.77")
	n.Links.SetAddrs("eth0", newIP)
	s.NodeIPs = []netip.Addr{newIP}
	// New node-wide settings: the proxier asks a full sync.
	if res := ipvstesting.SyncOK(t, b, s, nil); !res.Full {
		t.Error("Full = false after the node's address changed")
	}
	for k := range table(n) {
		if strings.Contains(k, "192.168.0.1:") {
			t.Errorf("virtual service %s on the old address is left", k)
		}
	}
	if _, ok := n.IPVS.Service(ipvs.ServiceKey{Addr: newIP, Port: 30080, Protocol: proxy.TCP}); !ok {
		t.Error("no node port on the new address")
	}
}

func TestSyncRejectsBadStates(t *testing.T) {
	n := newNode(t, proxy.IPv4)
	b := newBackend(t, n)
	_, ctx := ktesting.NewTestContext(t)
	for name, s := range map[string]*proxy.State{"nil": nil, "other family": {Family: proxy.IPv6}} {
		if _, err := b.Sync(ctx, s, nil); !errors.Is(err, ipvs.ErrInvalidState) {
			t.Errorf("%s: err = %v, want ErrInvalidState", name, err)
		}
	}
}
