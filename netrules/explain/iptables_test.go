package explain_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/netrules/explain"
	"github.com/berthnode/berth/netrules/internal/golden"
	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// echoState is a state with one ClusterIP service port over 3 endpoints,
// one of them on this node.
func echoState() *proxy.State {
	f := proxy.IPv4
	return &proxy.State{
		Family: f,
		Services: []proxy.ServicePort{{
			Name: proxytest.Name("default/echo:http", proxy.TCP), Protocol: proxy.TCP,
			ClusterIPs: []netip.Addr{proxytest.ServiceIP(f, 20)}, Port: 80,
			ClusterEndpoints: []proxy.Endpoint{
				proxytest.Endpoint(f, 1, 20, 8080), proxytest.Endpoint(f, 2, 20, 8080), proxytest.Endpoint(f, 3, 20, 8080),
			},
		}},
		ClusterCIDRs: []netip.Prefix{proxytest.ClusterCIDR(f)},
		NodeIPs:      []netip.Addr{proxytest.NodeIP(f)},
	}
}

func TestExplainGolden(t *testing.T) {
	v4 := proxytest.ExampleState(proxy.IPv4)
	v6 := proxytest.ExampleState(proxy.IPv6)
	masqAll := proxytest.ExampleState(proxy.IPv4)
	masqAll.MasqueradeAll = true
	masqAll.NodePortAddresses = []netip.Prefix{proxytest.NodeNet(proxy.IPv4)}
	multi := proxytest.ExampleState(proxy.IPv4)
	multi.ClusterCIDRs = append(multi.ClusterCIDRs, netip.MustParsePrefix("10.128.0.0/16"))
	for _, tc := range []struct {
		golden  string
		state   *proxy.State
		service string
	}{
		{"explain-clusterip.golden", echoState(), "default/echo"},
		{"explain-nodeport.golden", v4, "default/web"},
		{"explain-affinity.golden", v4, "default/sticky"},
		{"explain-two-ports.golden", v4, "kube-system/kube-dns"},
		{"explain-one-port.golden", v4, "kube-system/kube-dns:dns-tcp"},
		{"explain-etp-local.golden", v4, "default/local-lb"},
		{"explain-etp-local-none.golden", v4, "default/local-none"},
		{"explain-itp-local.golden", v4, "default/itp-local"},
		{"explain-no-endpoints.golden", v4, "default/empty"},
		{"explain-lb.golden", v4, "default/lb"},
		{"explain-sctp.golden", v4, "default/sctp"},
		{"explain-ipv6.golden", v6, "default/local-lb"},
		{"explain-ipv6-affinity.golden", v6, "default/sticky"},
		{"explain-masquerade-all.golden", masqAll, "default/web"},
		{"explain-cluster-cidrs.golden", multi, "default/web"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			e, err := explain.Explain(saved(t, tc.state), tc.service)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			golden.Check(t, tc.golden, []byte(e.String()))
		})
	}
}

// TestExplainModel checks the structure behind the text for a node-port
// service and an externalTrafficPolicy Local load balancer.
func TestExplainModel(t *testing.T) {
	f := proxy.IPv4
	save := saved(t, proxytest.ExampleState(f))
	ep := func(addr, chain string) explain.EndpointRule {
		return explain.EndpointRule{Addr: netip.MustParseAddrPort(addr), Chain: chain}
	}
	web := explain.Balance{Chain: "BERTH-SVC-PK5WNJDG7Q-web", Endpoints: []explain.EndpointRule{
		ep("10.244.1.2:8080", "BERTH-SEP-XR2744YNQR-244.1.2"),
		ep("10.244.2.2:8080", "BERTH-SEP-TK5A6Z6DGD-244.2.2"),
		ep("10.244.3.2:8080", "BERTH-SEP-IJFT2763VG-244.3.2"),
	}}
	localLB := explain.Balance{Chain: "BERTH-SVC-NZ4WKQ4KAT-local-l", Endpoints: []explain.EndpointRule{
		ep("10.244.1.5:8080", "BERTH-SEP-67CKKPSDN7-244.1.5"),
		ep("10.244.2.5:8080", "BERTH-SEP-VOORUY6NMA-244.2.5"),
	}}
	for _, tc := range []struct {
		service string
		want    explain.PortRules
	}{
		{"default/web", explain.PortRules{
			Name: "default/web:http", Protocol: proxy.TCP,
			Destinations: []explain.Destination{
				{Kind: explain.KindClusterIP, IP: proxytest.ServiceIP(f, 10), Port: 80, Chain: web.Chain},
				{Kind: explain.KindNodePort, Port: 30080, Chain: "BERTH-EXT-PK5WNJDG7Q-web"},
			},
			Cluster:           web,
			ClusterMasquerade: explain.Masquerade{Except: []string{"10.244.0.0/16"}},
			External:          explain.External{Chain: "BERTH-EXT-PK5WNJDG7Q-web", Masquerade: true, Endpoints: web},
		}},
		{"default/local-lb", explain.PortRules{
			Name: "default/local-lb", Protocol: proxy.TCP,
			Destinations: []explain.Destination{
				{Kind: explain.KindClusterIP, IP: proxytest.ServiceIP(f, 13), Port: 80, Chain: localLB.Chain},
				{Kind: explain.KindLoadBalancerIP, IP: proxytest.LoadBalancerIP(f, 10), Port: 80, Chain: "BERTH-FW-NZ4WKQ4KAT-local-lb",
					Verdict: "DROP", VerdictChain: iptables.ChainFirewall},
				{Kind: explain.KindNodePort, Port: 30082, Chain: "BERTH-EXT-NZ4WKQ4KAT-local-l"},
			},
			Cluster:           localLB,
			ClusterMasquerade: explain.Masquerade{Except: []string{"10.244.0.0/16"}},
			External: explain.External{
				Chain: "BERTH-EXT-NZ4WKQ4KAT-local-l", Local: true, PodsToCluster: []string{"10.244.0.0/16"}, NodeToCluster: true,
				Endpoints: explain.Balance{Chain: "BERTH-SVX-NZ4WKQ4KAT-local-l", Endpoints: localLB.Endpoints[:1]},
			},
			Firewall:            explain.Firewall{Chain: "BERTH-FW-NZ4WKQ4KAT-local-lb", Sources: []string{"203.0.113.0/24"}},
			HealthCheckNodePort: 32000,
		}},
	} {
		t.Run(tc.service, func(t *testing.T) {
			e, err := explain.Explain(save, tc.service)
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			want := &explain.Explanation{Service: tc.service, Ports: []explain.PortRules{tc.want},
				NodePortAddresses: "every local address except 127.0.0.0/8"}
			if diff := cmp.Diff(want, e, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("Explain(%s) (-want +got):\n%s", tc.service, diff)
			}
		})
	}
}

// TestExplainKernelOutput explains what the fake's iptables-save prints
// after a sync: the same as the payload says.
func TestExplainKernelOutput(t *testing.T) {
	for _, f := range []proxy.Family{proxy.IPv4, proxy.IPv6} {
		for _, legacy := range []bool{false, true} {
			state := proxytest.ExampleState(f)
			fake := syncedFake(t, state, legacy)
			fromKernel := map[xtables.Table][]byte{
				xtables.TableNAT:    fake.Save(f, xtables.TableNAT),
				xtables.TableFilter: fake.Save(f, xtables.TableFilter),
			}
			fromPayload := saved(t, state)
			for _, svc := range []string{"default/web", "default/sticky", "default/local-lb", "default/empty", "kube-system/kube-dns"} {
				got, err := explain.Explain(fromKernel, svc)
				if err != nil {
					t.Fatalf("IPv%d legacy=%v: Explain(%s): %v", f, legacy, svc, err)
				}
				want, err := explain.Explain(fromPayload, svc)
				if err != nil {
					t.Fatalf("Explain(%s) of the payload: %v", svc, err)
				}
				if diff := cmp.Diff(want.String(), got.String()); diff != "" {
					t.Errorf("IPv%d legacy=%v: %s from iptables-save differs from the payload (-payload +save):\n%s", f, legacy, svc, diff)
				}
			}
		}
	}
}

func TestExplainErrors(t *testing.T) {
	save := saved(t, proxytest.ExampleState(proxy.IPv4))
	none := map[xtables.Table][]byte{
		xtables.TableNAT:    []byte("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"),
		xtables.TableFilter: []byte("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"),
	}
	for _, tc := range []struct {
		name    string
		save    map[xtables.Table][]byte
		service string
		want    error
		// text is part of the message.
		text string
	}{
		{"unknown service", save, "default/nope", explain.ErrNotProgrammed,
			"nothing is programmed for default/nope: no berth rule in nat or filter is for it " +
				"(a service gets rules once it has a cluster IP; a headless one never does); " +
				"services of namespace default that have some: empty, itp-local, lb, local-lb, local-none, sctp, sticky, web"},
		{"a prefix of a service's name", save, "default/we", explain.ErrNotProgrammed, "nothing is programmed for default/we"},
		{"unknown port", save, "default/web:https", explain.ErrNotProgrammed, "nothing is programmed for default/web:https"},
		{"unknown namespace", save, "prod/web", explain.ErrNotProgrammed, "no service of namespace prod has any"},
		{"no berth rules", none, "default/web", explain.ErrNotProgrammed, "the nat table has no BERTH-SERVICES chain"},
		{"no namespace", save, "web", explain.ErrBadServiceName, `"web"`},
		{"empty name", save, "default/", explain.ErrBadServiceName, ""},
		{"empty port", save, "default/web:", explain.ErrBadServiceName, ""},
		{"two slashes", save, "default/web/http", explain.ErrBadServiceName, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := explain.Explain(tc.save, tc.service)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Explain(%q) = %v, %v; want an error wrapping %v", tc.service, e, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("Explain(%q): %v; want it to say %q", tc.service, err, tc.text)
			}
		})
	}
}

// TestExplainNotes: rules berth does not write that way are reported, not
// hidden.
func TestExplainNotes(t *testing.T) {
	full := saved(t, proxytest.ExampleState(proxy.IPv4))
	nat := string(full[xtables.TableNAT])
	for _, tc := range []struct {
		name string
		edit func(nat string) string
		want []string
	}{
		{"missing endpoint chain", func(nat string) string {
			return dropLines(nat, "BERTH-SEP-TK5A6Z6DGD-244.2.2 ")
		}, []string{"chain BERTH-SEP-TK5A6Z6DGD-244.2.2 is jumped to but missing from the nat table"}},
		{"round robin edited", func(nat string) string {
			return strings.Replace(nat, "--every 3", "--every 4", 1)
		}, []string{"the rules of BERTH-SVC-PK5WNJDG7Q-web do not take the endpoints strictly in turn " +
			"(--every 4 on rule 1 of 3); the order shown is the rules' order"}},
		{"foreign rule", func(nat string) string {
			return strings.Replace(nat, "COMMIT", "-A BERTH-EXT-PK5WNJDG7Q-web -s 192.0.2.0/24 -j RETURN\nCOMMIT", 1)
		}, []string{"rule not understood in BERTH-EXT-PK5WNJDG7Q-web: -s 192.0.2.0/24 -j RETURN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			save := map[xtables.Table][]byte{xtables.TableNAT: []byte(tc.edit(nat)), xtables.TableFilter: full[xtables.TableFilter]}
			e, err := explain.Explain(save, "default/web")
			if err != nil {
				t.Fatalf("Explain: %v", err)
			}
			if diff := cmp.Diff(tc.want, e.Ports[0].Notes); diff != "" {
				t.Errorf("notes (-want +got):\n%s", diff)
			}
			if !strings.Contains(e.String(), "  note: "+tc.want[0]+"\n") {
				t.Errorf("the explanation does not print the note:\n%s", e)
			}
		})
	}
}

// dropLines removes the lines that contain s.
func dropLines(text, s string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if !strings.Contains(line, s) {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestExplainAffinityTimeout reads the timeout back in whole seconds.
func TestExplainAffinityTimeout(t *testing.T) {
	s := proxytest.ExampleState(proxy.IPv4)
	proxytest.Service(s, "default/sticky", proxy.TCP).AffinityTimeout = 90*time.Second + time.Millisecond
	e, err := explain.Explain(saved(t, s), "default/sticky")
	if err != nil {
		t.Fatalf("Explain: %v", err)
	}
	if got, want := e.Ports[0].AffinityTimeout, 91*time.Second; got != want {
		t.Errorf("affinity timeout %v, want %v (rounded up to whole seconds by Render)", got, want)
	}
}
