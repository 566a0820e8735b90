package ipvs_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"

	"github.com/berthnode/berth/netrules/ipvs"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// weights returns the weight of each destination of a virtual service; -1
// for a destination it does not have.
func weights(t *testing.T, n *ipvstesting.Node, k ipvs.ServiceKey, dests ...netip.AddrPort) []int {
	t.Helper()
	v, ok := n.IPVS.Service(k)
	if !ok {
		t.Fatalf("no virtual service %s", k)
	}
	out := make([]int, len(dests))
	for i, ap := range dests {
		out[i] = -1
		for _, d := range v.Destinations {
			if d.AddrPort() == ap {
				out[i] = d.Weight
			}
		}
	}
	return out
}

// drainSetup syncs the example state, gives web's first endpoint
// connections on its cluster IP and node port, and removes it from the
// state in a partial sync.
func drainSetup(t *testing.T, f proxy.Family) (*ipvstesting.Node, *ipvs.Backend, *proxy.State, netip.AddrPort, []ipvs.ServiceKey) {
	n := newNode(t, f)
	b := newBackend(t, n)
	s := proxytest.ExampleState(f)
	ipvstesting.SyncOK(t, b, s, nil)
	web := proxytest.Service(s, "default/web:http", proxy.TCP)
	gone := netip.AddrPortFrom(web.ClusterEndpoints[0].IP, web.ClusterEndpoints[0].Port)
	keys := []ipvs.ServiceKey{
		{Addr: proxytest.ServiceIP(f, 10), Port: 80, Protocol: proxy.TCP},
		{Addr: proxytest.NodeIP(f), Port: 30080, Protocol: proxy.TCP},
	}
	for _, k := range keys {
		if !n.IPVS.SetConnections(k, gone, 2, 1) {
			t.Fatalf("no destination %s in %s", gone, k)
		}
	}
	web.ClusterEndpoints = web.ClusterEndpoints[1:]
	web.ExternalEndpoints = web.ClusterEndpoints
	ipvstesting.SyncOK(t, b, s, map[string]bool{web.Name.Key(): true})
	return n, b, s, gone, keys
}

func TestGracefulTermination(t *testing.T) {
	families(t, func(t *testing.T, f proxy.Family) {
		n, b, s, gone, keys := drainSetup(t, f)
		_, ctx := ktesting.NewTestContext(t)
		for _, k := range keys {
			if w := weights(t, n, k, gone); w[0] != 0 {
				t.Errorf("%s: removed destination with connections has weight %d, want 0 (draining)", k, w[0])
			}
		}
		if got := len(b.Draining()); got != 2 {
			t.Errorf("Draining() = %q, want 2 destinations", b.Draining())
		}
		// Connections left: kept.
		if err := b.CheckDrains(ctx); err != nil {
			t.Fatal(err)
		}
		if w := weights(t, n, keys[0], gone); w[0] != 0 {
			t.Errorf("draining destination with connections was deleted")
		}
		// The cluster IP's connections end: deleted at the next check.
		n.IPVS.SetConnections(keys[0], gone, 0, 0)
		if err := b.CheckDrains(ctx); err != nil {
			t.Fatal(err)
		}
		if w := weights(t, n, keys[0], gone); w[0] != -1 {
			t.Errorf("destination without connections left: weight %d", w[0])
		}
		if w := weights(t, n, keys[1], gone); w[0] != 0 {
			t.Errorf("node port's draining destination: weight %d, want 0", w[0])
		}
		// The node port's never end: deleted once the grace period is over,
		// by a sync (which checks the draining destinations too).
		n.Clock.Step(ipvs.DefaultGracePeriod - time.Second)
		ipvstesting.SyncOK(t, b, s, map[string]bool{})
		if w := weights(t, n, keys[1], gone); w[0] != 0 {
			t.Errorf("deleted before the grace period was over: weight %d", w[0])
		}
		n.Clock.Step(time.Second)
		ipvstesting.SyncOK(t, b, s, map[string]bool{})
		if w := weights(t, n, keys[1], gone); w[0] != -1 {
			t.Errorf("still there after the grace period: weight %d", w[0])
		}
		if d := b.Draining(); len(d) != 0 {
			t.Errorf("Draining() = %q after all were deleted", d)
		}
		check(t, n, s)
	})
}

func TestDrainingDestinationComesBack(t *testing.T) {
	n, b, s, gone, keys := drainSetup(t, proxy.IPv4)
	web := proxytest.Service(s, "default/web:http", proxy.TCP)
	web.ClusterEndpoints = append([]proxy.Endpoint{proxytest.Endpoint(proxy.IPv4, 1, 2, 8080)}, web.ClusterEndpoints...)
	web.ExternalEndpoints = web.ClusterEndpoints
	ipvstesting.SyncOK(t, b, s, map[string]bool{web.Name.Key(): true})
	for _, k := range keys {
		if w := weights(t, n, k, gone); w[0] != 1 {
			t.Errorf("%s: destination back in the state has weight %d, want 1", k, w[0])
		}
	}
	if d := b.Draining(); len(d) != 0 {
		t.Errorf("Draining() = %q, want none", d)
	}
	check(t, n, s)
}

func TestUDPDestinationsGoAtOnce(t *testing.T) {
	n := newNode(t, proxy.IPv4)
	b := newBackend(t, n)
	s := proxytest.ExampleState(proxy.IPv4)
	ipvstesting.SyncOK(t, b, s, nil)
	dns := proxytest.Service(s, "kube-system/kube-dns:dns", proxy.UDP)
	k := ipvs.ServiceKey{Addr: proxytest.ServiceIP(proxy.IPv4, 53), Port: 53, Protocol: proxy.UDP}
	gone := netip.AddrPortFrom(dns.ClusterEndpoints[0].IP, 53)
	n.IPVS.SetConnections(k, gone, 0, 40)
	dns.ClusterEndpoints = dns.ClusterEndpoints[1:]
	ipvstesting.SyncOK(t, b, s, map[string]bool{dns.Name.Key(): true})
	if w := weights(t, n, k, gone); w[0] != -1 {
		t.Errorf("UDP destination with flows left at weight %d, want deleted", w[0])
	}
	check(t, n, s)
}

func TestFullSyncKeepsDraining(t *testing.T) {
	n, b, s, gone, keys := drainSetup(t, proxy.IPv4)
	n.IPVS.ResetCalls()
	// A full sync leaves the draining destinations draining, untouched.
	ipvstesting.SyncOK(t, b, s, nil)
	if w := n.IPVS.Writes(); len(w) != 0 {
		t.Errorf("full sync with draining destinations made %q", w)
	}
	if d := b.Draining(); len(d) != 2 {
		t.Errorf("Draining() = %q", d)
	}
	// Restarted, berth finds them at weight 0 and drains them anew.
	b2 := newBackend(t, n)
	ipvstesting.SyncOK(t, b2, s, nil)
	if d := b2.Draining(); len(d) != 2 {
		t.Errorf("after a restart, Draining() = %q", d)
	}
	n.Clock.Step(ipvs.DefaultGracePeriod)
	ipvstesting.SyncOK(t, b2, s, nil)
	for _, k := range keys {
		if w := weights(t, n, k, gone); w[0] != -1 {
			t.Errorf("%s: still there after the grace period", k)
		}
	}
}

func TestRunChecksDrains(t *testing.T) {
	n, b, _, gone, keys := drainSetup(t, proxy.IPv4)
	for _, k := range keys {
		n.IPVS.SetConnections(k, gone, 0, 0)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !n.Clock.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("Run never waits on its ticker")
		}
		time.Sleep(time.Millisecond)
	}
	n.Clock.Step(ipvs.DefaultCheckInterval)
	for len(b.Draining()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not delete the drained destinations: %q", b.Draining())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	for _, k := range keys {
		if diff := cmp.Diff([]int{-1}, weights(t, n, k, gone)); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", k, diff)
		}
	}
}
