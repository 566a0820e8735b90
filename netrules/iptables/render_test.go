package iptables_test

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/berthnode/berth/netrules/internal/golden"
	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

func payloadText(p iptables.Payload) []byte {
	var b bytes.Buffer
	for _, t := range p.Tables {
		b.Write(t.Data)
	}
	return b.Bytes()
}

func opts() iptables.RenderOptions {
	return iptables.RenderOptions{MasqueradeBit: iptables.DefaultMasqueradeBit}
}

func mustRender(t *testing.T, s *proxy.State, o iptables.RenderOptions, changed map[string]bool, existing iptables.ChainSet) iptables.Payload {
	t.Helper()
	p, err := iptables.Render(s, o, changed, existing)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return p
}

func key(name string, proto proxy.Protocol) string {
	return proxytest.Name(name, proto).Key()
}

func TestRenderGolden(t *testing.T) {
	v4 := proxytest.ExampleState(proxy.IPv4)
	full := mustRender(t, v4, opts(), nil, nil)

	// The web service loses an endpoint: a partial sync rewrites its chains
	// only, and deletes the endpoint's.
	partial := proxytest.ExampleState(proxy.IPv4)
	web := proxytest.Service(partial, "default/web:http", proxy.TCP)
	web.ClusterEndpoints = web.ClusterEndpoints[:2]
	web.ExternalEndpoints = web.ClusterEndpoints

	removed := proxytest.ExampleState(proxy.IPv4)
	removed.Services = slicesDelete(removed.Services, "default/lb", "default/sticky")

	options := proxytest.ExampleState(proxy.IPv4)
	options.MasqueradeAll = true
	options.NodePortAddresses = []netip.Prefix{proxytest.NodeNet(proxy.IPv4), netip.MustParsePrefix("127.0.0.0/8")}
	multi := proxytest.ExampleState(proxy.IPv4)
	multi.ClusterCIDRs = append(multi.ClusterCIDRs, netip.MustParsePrefix("10.128.0.0/16"), netip.MustParsePrefix("fd00::/8"))

	for _, tc := range []struct {
		name     string
		state    *proxy.State
		opts     iptables.RenderOptions
		changed  map[string]bool
		existing iptables.ChainSet
	}{
		{"full-ipv4.golden", v4, opts(), nil, nil},
		{"full-ipv6.golden", proxytest.ExampleState(proxy.IPv6), opts(), nil, nil},
		{"partial.golden", partial, opts(), map[string]bool{key("default/web:http", proxy.TCP): true}, full.Chains},
		{"removed.golden", removed, opts(), map[string]bool{}, full.Chains},
		{"masquerade-all.golden", options, iptables.RenderOptions{MasqueradeBit: 0, TCPBeLiberal: true}, nil, nil},
		{"cluster-cidrs.golden", multi, opts(), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			golden.Check(t, tc.name, payloadText(mustRender(t, tc.state, tc.opts, tc.changed, tc.existing)))
		})
	}
}

func slicesDelete(s []proxy.ServicePort, names ...string) []proxy.ServicePort {
	var out []proxy.ServicePort
	for _, sp := range s {
		keep := true
		for _, n := range names {
			if proxytest.Name(n, sp.Protocol).Key() == sp.Name.Key() {
				keep = false
			}
		}
		if keep {
			out = append(out, sp)
		}
	}
	return out
}

func TestRenderInvalid(t *testing.T) {
	f := proxy.IPv4
	for _, tc := range []struct {
		name   string
		mutate func(s *proxy.State)
		opts   iptables.RenderOptions
		want   error
	}{
		{"unknown family", func(s *proxy.State) { s.Family = 0 }, opts(), iptables.ErrInvalidState},
		{"unknown protocol", func(s *proxy.State) { s.Services[0].Protocol = "ICMP" }, opts(), iptables.ErrInvalidState},
		{"port 0", func(s *proxy.State) { s.Services[0].Port = 0 }, opts(), iptables.ErrInvalidState},
		{"endpoint port 0", func(s *proxy.State) {
			proxytest.Service(s, "default/web:http", proxy.TCP).ClusterEndpoints[0].Port = 0
		}, opts(), iptables.ErrInvalidState},
		{"same service twice", func(s *proxy.State) { s.Services = append(s.Services, s.Services[0]) }, opts(), iptables.ErrInvalidState},
		{"masquerade bit 32", func(*proxy.State) {}, iptables.RenderOptions{MasqueradeBit: 32}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := proxytest.ExampleState(f)
			tc.mutate(s)
			_, err := iptables.Render(s, tc.opts, nil, nil)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Render: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRenderSkipsOtherFamilies: addresses of the other family are not
// programmed (a dual-stack service's state holds both).
func TestRenderSkipsOtherFamilies(t *testing.T) {
	s := proxytest.ExampleState(proxy.IPv4)
	v6 := proxytest.ExampleState(proxy.IPv6)
	for i := range s.Services {
		sp, o := &s.Services[i], &v6.Services[i]
		sp.ClusterIPs = append(sp.ClusterIPs, o.ClusterIPs...)
		sp.ExternalIPs = append(sp.ExternalIPs, o.ExternalIPs...)
		sp.LoadBalancerIPs = append(sp.LoadBalancerIPs, o.LoadBalancerIPs...)
		sp.ClusterEndpoints = append(sp.ClusterEndpoints, o.ClusterEndpoints...)
	}
	got := mustRender(t, s, opts(), nil, nil)
	want := mustRender(t, proxytest.ExampleState(proxy.IPv4), opts(), nil, nil)
	// Only the cluster endpoints changed (the external ones are the
	// same list in the example): the v6 endpoints are dropped, so the
	// rules are the same but the SVX chains, which now equal SVC.
	if bytes.Contains(payloadText(got), []byte("fd00")) {
		t.Errorf("IPv4 payload holds IPv6 addresses:\n%s", payloadText(got))
	}
	if len(got.Chains) != len(want.Chains) {
		t.Errorf("IPv4 payload with IPv6 addresses has %d chains, want %d", len(got.Chains), len(want.Chains))
	}
}

// TestRenderCounts: the counts of a payload add up to its -A lines, and a
// partial payload rewrites a service whose chains are missing.
func TestRenderCounts(t *testing.T) {
	s := proxytest.ExampleState(proxy.IPv4)
	full := mustRender(t, s, opts(), nil, nil)
	n := full.TopRules
	for _, c := range full.ServiceRules {
		n += c
	}
	if lines := bytes.Count(payloadText(full), []byte("\n-A ")); lines != n {
		t.Errorf("full payload: %d -A lines, counts say %d", lines, n)
	}
	existing := iptables.ChainSet{}
	for ref := range full.Chains {
		if !strings.Contains(ref.Chain, "-web") {
			existing[ref] = true
		}
	}
	partial := mustRender(t, s, opts(), map[string]bool{}, existing)
	if partial.Full || len(partial.ServiceRules) != 1 || partial.ServiceRules[key("default/web:http", proxy.TCP)] == 0 {
		t.Errorf("partial payload with web's chains missing rewrote %v, want web only", partial.ServiceRules)
	}
}
