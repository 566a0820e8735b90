package explain_test

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/netrules/iptables"
	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/ipvs"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("explanation differs from %s (-want +got; run with -update if intended):\n%s", path, diff)
	}
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

// saved turns a payload into what iptables-save would print once it is
// applied: a full payload declares and fills every berth chain.
func saved(p iptables.Payload) map[xtables.Table][]byte {
	out := map[xtables.Table][]byte{}
	for _, t := range p.Tables {
		out[t.Table] = t.Data
	}
	return out
}

// syncedFake returns a fake iptables after an iptables backend synced state
// into it.
func syncedFake(t *testing.T, state *proxy.State, legacy bool) *iptablestesting.Fake {
	t.Helper()
	f := state.Family
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	fake := iptablestesting.NewFake(iptablestesting.FakeConfig{Legacy: legacy, Clock: clk, LocalAddrs: []netip.Addr{iptablestesting.NodeIP(f)}})
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

func syncOK(t *testing.T, b *ipvs.Backend, s *proxy.State, changed map[string]bool) proxy.SyncResult {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	res, err := b.Sync(ctx, s, changed)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return res
}
