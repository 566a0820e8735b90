package nftables

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	gnft "github.com/google/nftables"

	"github.com/berthnode/berth/netrules/internal/golden"
	"github.com/berthnode/berth/proxy"
)

// TestPartialGolden checks the operations of partial syncs after a full
// one (testdata/partial.golden; -update rewrites it): a replaced endpoint
// is map elements only, a port gaining its first endpoint gets its chain
// and moves from no-endpoint-ips to service-ips, a port gone leaves
// nothing behind, and a change of the number of endpoints rewrites the
// one chain.
func TestPartialGolden(t *testing.T) {
	b, err := New(Config{Family: proxy.IPv4, MasqueradeBit: DefaultMasqueradeBit})
	if err != nil {
		t.Fatal(err)
	}
	state := goldenState()
	at := func(name string) int {
		i := slices.IndexFunc(state.Services, func(s proxy.ServicePort) bool { return s.Name.Name == name })
		if i < 0 {
			t.Fatalf("no service %s", name)
		}
		return i
	}
	sync := func(changed map[string]bool) []string {
		t.Helper()
		g, err := newGlobals(state, Options{MasqueradeBit: DefaultMasqueradeBit})
		if err != nil {
			t.Fatal(err)
		}
		if changed == nil {
			b.alloc, b.refs = newAllocator(), map[string]int{}
		}
		planned, err := plan(state, g, changed, b.alloc)
		if err != nil {
			t.Fatal(err)
		}
		c, err := gnft.New() // queues messages; never flushed
		if err != nil {
			t.Fatal(err)
		}
		tx, err := b.build(c, g, planned, changed)
		if err != nil {
			t.Fatal(err)
		}
		if changed == nil {
			b.plans = planned
		} else {
			for k := range changed {
				if p, ok := planned[k]; ok {
					b.plans[k] = p
				} else {
					delete(b.plans, k)
				}
			}
		}
		return tx.ops
	}
	sync(nil)
	var out strings.Builder
	step := func(title string, i int) {
		key := state.Services[i].Name.Key()
		out.WriteString("# " + title + "\n")
		for _, op := range sync(map[string]bool{key: true}) {
			out.WriteString(op + "\n")
		}
	}
	ep := func(s string) proxy.Endpoint {
		return proxy.Endpoint{IP: netip.MustParseAddr(s), Port: 8080, Ready: true, Serving: true}
	}
	// default/local has no affinity: one of its endpoints replaced.
	local := &state.Services[at("local")]
	local.ClusterEndpoints = []proxy.Endpoint{local.ClusterEndpoints[0], ep("10.244.4.2"), local.ClusterEndpoints[2]}
	step("default/local: endpoint 10.244.2.2 replaced by 10.244.4.2", at("local"))
	local.ClusterEndpoints = local.ClusterEndpoints[:2]
	step("default/local: 2 cluster endpoints instead of 3", at("local"))
	empty := &state.Services[at("empty")]
	empty.ClusterEndpoints = []proxy.Endpoint{ep("10.244.5.2")}
	empty.ExternalEndpoints = empty.ClusterEndpoints
	step("default/empty: its first endpoint", at("empty"))
	i := at("local")
	key := state.Services[i].Name.Key()
	state.Services = slices.Delete(state.Services, i, i+1)
	out.WriteString("# default/local: gone\n")
	for _, op := range sync(map[string]bool{key: true}) {
		out.WriteString(op + "\n")
	}
	golden.Check(t, "partial.golden", []byte(out.String()))
}
