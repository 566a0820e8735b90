package ipvs_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/klog/v2/ktesting"

	"github.com/berthnode/berth/netrules/ipvs"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// refused checks that b refuses a partial sync of s with
// proxy.ErrFullSyncRequired, and makes no IPVS, link or iptables change:
// which syncs are full is the proxier's decision (proxy's
// TestSyncFamilyDecidesFullSyncs); a backend that cannot trust its memory
// only says so.
func refused(t *testing.T, n *ipvstesting.Node, b *ipvs.Backend, s *proxy.State) {
	t.Helper()
	n.IPVS.ResetCalls()
	n.Links.ResetCalls()
	restores := n.IPTables.Restores()
	_, ctx := ktesting.NewTestContext(t)
	if _, err := b.Sync(ctx, s, map[string]bool{}); !errors.Is(err, proxy.ErrFullSyncRequired) {
		t.Errorf("partial sync: err = %v, want proxy.ErrFullSyncRequired", err)
	}
	if c, l, r := n.IPVS.Calls(), n.Links.Calls(), n.IPTables.Restores()-restores; len(c) != 0 || len(l) != 0 || r != 0 {
		t.Errorf("a refused sync made IPVS calls %q, link calls %q and %d restores", c, l, r)
	}
}

func TestFailedCallThenFullSyncConverges(t *testing.T) {
	for _, method := range []string{"NewService", "NewDestination", "GetDestinations", "DelService", "UpdateDestination"} {
		t.Run(method, func(t *testing.T) {
			n := newNode(t, proxy.IPv4)
			b := newBackend(t, n)
			s := proxytest.ExampleState(proxy.IPv4)
			if method == "DelService" || method == "UpdateDestination" || method == "GetDestinations" {
				// Changes that need these calls: a service port removed,
				// an endpoint terminating beside ready ones (weight 0).
				ipvstesting.SyncOK(t, b, s, nil)
				web := proxytest.Service(s, "default/web:http", proxy.TCP)
				web.ClusterEndpoints[0].Ready, web.ClusterEndpoints[0].Terminating = false, true
				web.ExternalEndpoints = web.ClusterEndpoints
				s.Services = slices.DeleteFunc(s.Services, func(sp proxy.ServicePort) bool { return sp.Name.Name == "sctp" })
			}
			n.IPVS.Fail(method, ipvstesting.ErrInjected())
			_, ctx := ktesting.NewTestContext(t)
			_, err := b.Sync(ctx, s, nil)
			if !errors.Is(err, ipvstesting.ErrInjected()) {
				t.Fatalf("Sync with a failing %s: err = %v, want the injected failure", method, err)
			}
			if method == "NewService" {
				// One virtual service failed; the others were programmed.
				if got, all := len(table(n)), len(want(t, n, s, "rr")); got != all-1 {
					t.Errorf("after one failed NewService the table has %d virtual services, want %d", got, all-1)
				}
			}
			// A partial sync is refused; the full one the proxier then
			// asks converges.
			refused(t, n, b, s)
			res := ipvstesting.SyncOK(t, b, s, nil)
			if !res.Full {
				t.Error("sync after a failure: Full = false")
			}
			check(t, n, s)
			n.IPVS.ResetCalls()
			ipvstesting.SyncOK(t, b, s, nil)
			if w := n.IPVS.Writes(); len(w) != 0 {
				t.Errorf("not converged: the sync after made %q", w)
			}
		})
	}
}

func TestRestoreErrorKeepsTheNextSyncFull(t *testing.T) {
	n := newNode(t, proxy.IPv4)
	ex := &failingExec{Exec: n.IPTables, failOn: "-restore", stderr: "iptables-restore: line 3 failed\n"}
	b := newBackend(t, n, func(c *ipvs.Config) { c.Exec = ex })
	s := proxytest.ExampleState(proxy.IPv4)
	_, ctx := ktesting.NewTestContext(t)
	_, err := b.Sync(ctx, s, nil)
	var re *xtables.RestoreError
	if !errors.As(err, &re) || re.Line != 3 || len(re.Context) == 0 || !strings.HasPrefix(re.Context[0], "1: *") {
		t.Fatalf("err = %v (%+v), want a RestoreError naming line 3 with its context", err, re)
	}
	ex.failOn = ""
	refused(t, n, b, s)
	if res := ipvstesting.SyncOK(t, b, s, nil); !res.Full {
		t.Error("sync after a rejected payload: Full = false")
	}
	check(t, n, s)
}

// TestFailedDrainCheckRefusesPartialSync: a check of the draining
// destinations that fails between syncs leaves the backend unsure of what
// IPVS holds: it refuses the next partial sync, the full one the proxier
// then asks converges, and partial syncs are taken again after it.
func TestFailedDrainCheckRefusesPartialSync(t *testing.T) {
	n, b, s, _, _ := drainSetup(t, proxy.IPv4)
	n.IPVS.Fail("GetDestinations", ipvstesting.ErrInjected())
	_, ctx := ktesting.NewTestContext(t)
	if err := b.CheckDrains(ctx); !errors.Is(err, ipvstesting.ErrInjected()) {
		t.Fatalf("CheckDrains with a failing GetDestinations: err = %v, want the injected failure", err)
	}
	refused(t, n, b, s)
	if res := ipvstesting.SyncOK(t, b, s, nil); !res.Full {
		t.Error("full sync after a failed drain check: Full = false")
	}
	if d := b.Draining(); len(d) != 2 {
		t.Errorf("Draining() = %q after the full sync, want the 2 destinations still draining", d)
	}
	if res := ipvstesting.SyncOK(t, b, s, map[string]bool{}); res.Full {
		t.Error("partial sync after the full one: Full = true")
	}
}
