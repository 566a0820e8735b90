package ipvs_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/netrules/internal/golden"
	"github.com/berthnode/berth/netrules/iptables"
	ipt "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/ipvs"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

func render(t *testing.T, s *proxy.State) ipvs.Rules {
	t.Helper()
	r, err := ipvs.RenderRules(s, ipvs.RuleOptions{MasqueradeBit: iptables.DefaultMasqueradeBit, NodePortAddrs: []netip.Addr{proxytest.NodeIP(s.Family)}})
	if err != nil {
		t.Fatalf("RenderRules: %v", err)
	}
	return r
}

func TestRenderRulesGolden(t *testing.T) {
	for _, f := range []proxy.Family{proxy.IPv4, proxy.IPv6} {
		t.Run(fmt.Sprintf("IPv%d", f), func(t *testing.T) {
			r := render(t, proxytest.ExampleState(f))
			var all bytes.Buffer
			for _, td := range r.Tables {
				all.Write(td.Data)
			}
			golden.Check(t, fmt.Sprintf("rules-ipv%d.golden", f), all.Bytes())
			// The fake parses restore input as strictly as the kernel: it
			// must take the payload, twice (a re-sync).
			fake := ipt.NewFake(ipt.FakeConfig{})
			bin := "iptables-nft-restore"
			if f == proxy.IPv6 {
				bin = "ip6tables-nft-restore"
			}
			for range 2 {
				for _, td := range r.Tables {
					if _, err := fake.Run(context.Background(), td.Data, bin, "--noflush"); err != nil {
						t.Fatalf("restore of %s: %v", td.Table, err)
					}
				}
			}
			n := 0
			for _, tbl := range []xtables.Table{xtables.TableFilter, xtables.TableNAT} {
				for k, rules := range ipt.Rules(fake.Save(f, tbl)) {
					if bytes.Contains([]byte(k), []byte(ipvs.ChainPrefix)) {
						n += len(rules)
					}
				}
			}
			if n != r.Count {
				t.Errorf("Count = %d, the fake holds %d rules", r.Count, n)
			}
		})
	}
}

// TestRenderRulesMasquerade covers the cluster-IP masquerade choices.
func TestRenderRulesMasquerade(t *testing.T) {
	base := svcPort("default/web", proxy.TCP, "10.96.0.10", 80)
	base.ClusterEndpoints = []proxy.Endpoint{ep("10.244.2.2", 8080)}
	for _, tc := range []struct {
		name  string
		cidrs []string
		all   bool
		want  []string
	}{
		{name: "masqueradeAll", all: true, cidrs: []string{"10.244.0.0/16"},
			want: []string{"-d 10.96.0.10/32 -p tcp -m comment --comment \"default/web cluster IP\" -m tcp --dport 80 -j BERTH-IPVS-MARK-MASQ"}},
		{name: "one cluster CIDR", cidrs: []string{"10.244.0.0/16"},
			want: []string{"! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m comment --comment \"default/web cluster IP\" -m tcp --dport 80 -j BERTH-IPVS-MARK-MASQ"}},
		{name: "two cluster CIDRs", cidrs: []string{"10.244.0.0/16", "10.245.0.0/16"},
			want: []string{"-d 10.96.0.10/32 -p tcp -m comment --comment \"default/web cluster IP\" -m tcp --dport 80 -j BERTH-IPVS-MARK-OFFCLUSTER"}},
		{name: "no cluster CIDR: the node's own connections",
			want: []string{"-s 10.96.0.10/32 -d 10.96.0.10/32 -p tcp -m comment --comment \"default/web cluster IP\" -m tcp --dport 80 -j BERTH-IPVS-MARK-MASQ"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &proxy.State{Family: proxy.IPv4, Services: []proxy.ServicePort{base}, MasqueradeAll: tc.all}
			for _, c := range tc.cidrs {
				s.ClusterCIDRs = append(s.ClusterCIDRs, netip.MustParsePrefix(c))
			}
			var nat []byte
			for _, td := range render(t, s).Tables {
				if td.Table == xtables.TableNAT {
					nat = td.Data
				}
			}
			var got []string
			for _, r := range ipt.Rules(nat)["nat "+ipvs.ChainServices] {
				if !bytes.Contains([]byte(r), []byte("ACCEPT")) && !bytes.Contains([]byte(r), []byte("NODEPORTS")) {
					got = append(got, r)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("masquerade rules (-want +got):\n%s", diff)
			}
		})
	}
}
