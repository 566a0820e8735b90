package explain_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/netrules/iptables"
	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/ipvs"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// saved renders state in full and returns what iptables-save prints once
// the payload is applied: a full payload declares and fills every berth
// chain.
func saved(t *testing.T, state *proxy.State) map[xtables.Table][]byte {
	t.Helper()
	p, err := iptables.Render(state, iptables.RenderOptions{MasqueradeBit: iptables.DefaultMasqueradeBit}, nil, nil)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	out := map[xtables.Table][]byte{}
	for _, td := range p.Tables {
		out[td.Table] = td.Data
	}
	return out
}

// syncedFake returns a fake iptables after an iptables backend synced state
// into it.
func syncedFake(t *testing.T, state *proxy.State, legacy bool) *iptablestesting.Fake {
	t.Helper()
	f := state.Family
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fake := iptablestesting.NewFake(iptablestesting.FakeConfig{Legacy: legacy, Clock: clk, LocalAddrs: []netip.Addr{proxytest.NodeIP(f)}})
	b, err := iptables.New(iptables.Config{Family: f, MasqueradeBit: iptables.DefaultMasqueradeBit, Exec: fake, Hooks: fake.Hooks(f), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	if _, err := b.Sync(ctx, state, nil); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return fake
}

func families(t *testing.T, run func(t *testing.T, f proxy.Family)) {
	for _, f := range []proxy.Family{proxy.IPv4, proxy.IPv6} {
		t.Run(fmt.Sprintf("IPv%d", f), func(t *testing.T) { run(t, f) })
	}
}

func newIPVSNode(t *testing.T, f proxy.Family) *ipvstesting.Node {
	return ipvstesting.NewNode(t, f, ipvstesting.ExampleVIPs(f)...)
}

func newIPVSBackend(t *testing.T, n *ipvstesting.Node) *ipvs.Backend {
	t.Helper()
	b, err := ipvs.New(n.Config())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}
