package testing

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/netrules/iptables"
	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/ipvs"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// Node is a fake node for the IPVS backend: an IPVS table, interfaces, an
// iptables, a clock and a /proc of its own, all keeping state.
type Node struct {
	// Family is the family the node's backend programs.
	Family proxy.Family
	// IPVS is the IPVS table.
	IPVS *Fake
	// Links are the interfaces: eth0 with the node's address.
	Links *FakeLinks
	// IPTables is the iptables (its local addresses are the node's
	// address and the virtual addresses given to NewNode).
	IPTables *iptablestesting.Fake
	// Clock drives graceful termination.
	Clock *clocktesting.FakeClock
	// ProcRoot is a /proc with the kernel parameters IPVS mode sets and
	// net/ip_vs.
	ProcRoot string
}

// procFiles are the files of a fake /proc, with their first values.
var procFiles = map[string]string{
	"net/ip_vs":                                 "IP Virtual Server version 1.2.1 (size=4096)\n",
	"sys/kernel/osrelease":                      "6.8.0-fake\n",
	"sys/net/ipv4/ip_forward":                   "0\n",
	"sys/net/ipv4/vs/conntrack":                 "0\n",
	"sys/net/ipv4/vs/conn_reuse_mode":           "1\n",
	"sys/net/ipv4/vs/expire_nodest_conn":        "0\n",
	"sys/net/ipv4/vs/expire_quiescent_template": "0\n",
	"sys/net/bridge/bridge-nf-call-iptables":    "0\n",
	"sys/net/ipv4/conf/all/arp_ignore":          "0\n",
	"sys/net/ipv4/conf/all/arp_announce":        "0\n",
}

// NewNode returns a fake node whose eth0 holds the example node address of
// the family (proxytest.NodeIP), with vips also local to the
// iptables fake (they will be on the dummy interface).
func NewNode(t testing.TB, f proxy.Family, vips ...netip.Addr) *Node {
	t.Helper()
	root := t.TempDir()
	for name, v := range procFiles {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	node := proxytest.NodeIP(f)
	return &Node{
		Family:   f,
		IPVS:     NewFake(),
		Links:    NewFakeLinks(map[string][]netip.Addr{"eth0": {node}}),
		IPTables: iptablestesting.NewFake(iptablestesting.FakeConfig{LocalAddrs: append([]netip.Addr{node}, vips...)}),
		Clock:    clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		ProcRoot: root,
	}
}

// Config returns a backend configuration on the node's fakes.
func (n *Node) Config() ipvs.Config {
	return ipvs.Config{
		Family:        n.Family,
		MasqueradeBit: iptables.DefaultMasqueradeBit,
		Handle:        n.IPVS,
		Links:         n.Links,
		Exec:          n.IPTables,
		Hooks:         n.IPTables.Hooks(n.Family),
		Clock:         n.Clock,
		ProcRoot:      n.ProcRoot,
	}
}

// Sysctl reads a kernel parameter of the node's /proc ("net.ipv4.ip_forward").
func (n *Node) Sysctl(name string) string {
	data, err := os.ReadFile(filepath.Join(n.ProcRoot, "sys", strings.ReplaceAll(name, ".", "/")))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// ExampleVIPs returns the virtual addresses of proxytest.ExampleState:
// its cluster, external and load-balancer IPs.
func ExampleVIPs(f proxy.Family) []netip.Addr {
	var out []netip.Addr
	for _, sp := range proxytest.ExampleState(f).Services {
		for _, list := range [][]netip.Addr{sp.ClusterIPs, sp.ExternalIPs, sp.LoadBalancerIPs} {
			for _, a := range list {
				if !slices.Contains(out, a) {
					out = append(out, a)
				}
			}
		}
	}
	return out
}

// SyncOK syncs s into b (changed: see proxy.Backend) and fails the test
// when the sync fails.
func SyncOK(t testing.TB, b *ipvs.Backend, s *proxy.State, changed map[string]bool) proxy.SyncResult {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	res, err := b.Sync(ctx, s, changed)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return res
}
