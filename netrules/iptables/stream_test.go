package iptables_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// written returns what writing t gives, failing the test on an error or a
// count that is not the size written.
func written(t *testing.T, td xtables.TableData) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := td.WriteTo(&b)
	if err != nil || n != int64(b.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d bytes", n, err, b.Len())
	}
	return b.Bytes()
}

// TestRenderStreamedIsRender: a streamed full payload writes, every time,
// exactly the bytes of Render's full payload, counts the same rules and
// chains (stale chains removed too), and leaves the Renderer remembering
// the same, so that the next partial payload is the same.
func TestRenderStreamedIsRender(t *testing.T) {
	o := iptables.RenderOptions{MasqueradeBit: iptables.DefaultMasqueradeBit}
	stale := iptables.ChainSet{}
	stale.Add(xtables.TableNAT, "BERTH-SVC-GONE0000000000000")
	stale.Add(xtables.TableFilter, "BERTH-EXT-GONE000000000000")
	for _, tc := range []struct {
		name     string
		state    *proxy.State
		existing iptables.ChainSet
	}{
		{name: "example", state: proxytest.ExampleState(proxy.IPv4)},
		{name: "example IPv6 with stale chains", state: proxytest.ExampleState(proxy.IPv6), existing: stale},
		{name: "300 services", state: benchState(300), existing: stale},
		{name: "no services", state: &proxy.State{Family: proxy.IPv4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := iptables.NewRenderer(o)
			want := renderWith(t, plain, tc.state, nil, tc.existing)
			streaming := iptables.NewRenderer(o)
			got, err := streaming.RenderStreamed(tc.state, tc.existing)
			if err != nil {
				t.Fatalf("RenderStreamed: %v", err)
			}
			if diff := cmp.Diff(tables(want), tables(got)); diff != "" {
				t.Fatalf("tables (-Render +RenderStreamed):\n%s", diff)
			}
			for i, td := range got.Tables {
				if td.Table == xtables.TableNAT && !td.Streamed() {
					t.Errorf("the nat table is held in memory (%d bytes), want it streamed", len(td.Data))
				}
				first, second := written(t, td), written(t, td)
				if !bytes.Equal(first, want.Tables[i].Data) {
					t.Errorf("%s table differs from Render's:\n%s", td.Table, cmp.Diff(string(want.Tables[i].Data), string(first)))
				}
				if !bytes.Equal(first, second) {
					t.Errorf("%s table: a second write differs from the first", td.Table)
				}
			}
			for _, c := range []struct {
				what      string
				want, got any
			}{
				{"Full", want.Full, got.Full},
				{"Rules", want.Rules, got.Rules},
				{"TopRules", want.TopRules, got.TopRules},
				{"ServiceRules", want.ServiceRules, got.ServiceRules},
				{"Chains", want.Chains, got.Chains},
			} {
				if diff := cmp.Diff(c.want, c.got); diff != "" {
					t.Errorf("%s (-Render +RenderStreamed):\n%s", c.what, diff)
				}
			}
			if len(tc.state.Services) == 0 {
				return
			}
			// One endpoint moves: both Renderers write the same partial payload.
			sp := &tc.state.Services[len(tc.state.Services)/2]
			sp.ClusterEndpoints = append([]proxy.Endpoint{{IP: otherEndpoint(tc.state.Family), Port: 9999, Ready: true}}, sp.ClusterEndpoints...)
			changed := map[string]bool{sp.Name.Key(): true}
			if diff := cmp.Diff(payloadText(renderWith(t, plain, tc.state, changed, nil)), payloadText(renderWith(t, streaming, tc.state, changed, nil))); diff != "" {
				t.Errorf("partial payload after a streamed one differs (-after Render +after RenderStreamed):\n%s", diff)
			}
		})
	}
}

// otherEndpoint is an endpoint address no test state uses.
func otherEndpoint(f proxy.Family) netip.Addr {
	if f == proxy.IPv6 {
		return netip.MustParseAddr("fd00:99::1")
	}
	return netip.MustParseAddr("10.99.99.99")
}

func TestRenderStreamedErrors(t *testing.T) {
	bad := proxytest.ExampleState(proxy.IPv4)
	bad.Services[0].Protocol = "ICMP"
	r := iptables.NewRenderer(iptables.RenderOptions{MasqueradeBit: iptables.DefaultMasqueradeBit})
	if _, err := r.RenderStreamed(bad, nil); err == nil {
		t.Error("RenderStreamed of a state with an unknown protocol: no error")
	}
	if _, err := iptables.NewRenderer(iptables.RenderOptions{MasqueradeBit: 40}).RenderStreamed(proxytest.ExampleState(proxy.IPv4), nil); err == nil {
		t.Error("RenderStreamed with masquerade bit 40: no error")
	}
}
