package nftables

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthnode/berth/netrules/internal/golden"
	"github.com/berthnode/berth/proxy"
)

// sortServices sorts the ports by key, as Compute does (State's contract).
func sortServices(s *proxy.State) *proxy.State {
	slices.SortFunc(s.Services, func(a, b proxy.ServicePort) int { return strings.Compare(a.Name.Key(), b.Name.Key()) })
	return s
}

func goldenState() *proxy.State {
	ep := func(s string, local bool) proxy.Endpoint {
		return proxy.Endpoint{IP: netip.MustParseAddr(s), Port: 8080, Ready: true, Serving: true, Local: local}
	}
	eps := []proxy.Endpoint{ep("10.244.1.2", true), ep("10.244.2.2", false), ep("10.244.3.2", false)}
	return sortServices(&proxy.State{
		Family:       proxy.IPv4,
		ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		NodeIPs:      []netip.Addr{netip.MustParseAddr("192.168.0.10")},
		Services: []proxy.ServicePort{
			{Name: proxy.ServicePortName{Namespace: "default", Name: "web", Port: "http", Protocol: proxy.TCP}, Protocol: proxy.TCP,
				ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")}, Port: 80, NodePort: 30080,
				ExternalIPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, ClusterEndpoints: eps, ExternalEndpoints: eps,
				AffinityTimeout: 3 * time.Hour},
			{Name: proxy.ServicePortName{Namespace: "default", Name: "local", Protocol: proxy.UDP}, Protocol: proxy.UDP,
				ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.11")}, Port: 53, NodePort: 30053,
				LoadBalancerIPs: []netip.Addr{netip.MustParseAddr("198.51.100.1")}, ExternalLocal: true,
				SourceRanges:     []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("192.168.0.0/24")},
				ClusterEndpoints: eps, ExternalEndpoints: eps[:1]},
			{Name: proxy.ServicePortName{Namespace: "default", Name: "empty", Protocol: proxy.TCP}, Protocol: proxy.TCP,
				ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.12")}, Port: 80, NodePort: 30081},
		},
	})
}

// goldenState6 is an IPv6 service with a node port and one without
// endpoints.
func goldenState6() *proxy.State {
	eps := []proxy.Endpoint{
		{IP: netip.MustParseAddr("fd00:10:244:1::2"), Port: 8080, Ready: true, Serving: true},
		{IP: netip.MustParseAddr("fd00:10:244:2::2"), Port: 8080, Ready: true, Serving: true},
	}
	return &proxy.State{
		Family:            proxy.IPv6,
		ClusterCIDRs:      []netip.Prefix{netip.MustParsePrefix("fd00:10:244::/48")},
		MasqueradeAll:     true,
		NodePortAddresses: []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")},
		Services: []proxy.ServicePort{
			{Name: proxy.ServicePortName{Namespace: "default", Name: "web6", Protocol: proxy.TCP}, Protocol: proxy.TCP,
				ClusterIPs: []netip.Addr{netip.MustParseAddr("fd00:10:96::10")}, Port: 80, NodePort: 30080,
				ClusterEndpoints: eps, ExternalEndpoints: eps},
			{Name: proxy.ServicePortName{Namespace: "default", Name: "empty6", Protocol: proxy.SCTP}, Protocol: proxy.SCTP,
				ClusterIPs: []netip.Addr{netip.MustParseAddr("fd00:10:96::11")}, Port: 9},
		},
	}
}

// TestRenderGolden checks the whole table a State renders to (run with
// -update to rewrite testdata/ruleset.golden).
func TestRenderGolden(t *testing.T) {
	for name, state := range map[string]*proxy.State{"ruleset.golden": goldenState(), "ruleset6.golden": goldenState6()} {
		t.Run(name, func(t *testing.T) { checkGolden(t, name, state) })
	}
}

func checkGolden(t *testing.T, file string, state *proxy.State) {
	g, err := newGlobals(state, Options{MasqueradeBit: DefaultMasqueradeBit})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := plan(state, g, nil, newAllocator())
	if err != nil {
		t.Fatal(err)
	}
	var ordered []*servicePlan
	for _, s := range state.Services {
		ordered = append(ordered, plans[s.Name.Key()])
	}
	golden.Check(t, file, []byte(renderText(g.f, g.topLevel(), ordered)))
}
