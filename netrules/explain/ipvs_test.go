package explain_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/berthnode/berth/netrules/explain"
	"github.com/berthnode/berth/netrules/internal/golden"
	"github.com/berthnode/berth/netrules/ipvs"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

func save(n *ipvstesting.Node) map[xtables.Table][]byte {
	return map[xtables.Table][]byte{
		xtables.TableNAT:    n.IPTables.Save(n.Family, xtables.TableNAT),
		xtables.TableFilter: n.IPTables.Save(n.Family, xtables.TableFilter),
	}
}

func TestExplainIPVSGolden(t *testing.T) {
	families(t, func(t *testing.T, f proxy.Family) {
		n := newIPVSNode(t, f)
		b := newIPVSBackend(t, n)
		s := proxytest.ExampleState(f)
		ipvstesting.SyncOK(t, b, s, nil)
		// One draining destination, to show it.
		web := proxytest.Service(s, "default/web:http", proxy.TCP)
		n.IPVS.SetConnections(ipvs.ServiceKey{Addr: proxytest.ServiceIP(f, 10), Port: 80, Protocol: proxy.TCP},
			ipvsAddrPort(web.ClusterEndpoints[2]), 4, 2)
		web.ClusterEndpoints = web.ClusterEndpoints[:2]
		web.ExternalEndpoints = web.ClusterEndpoints
		ipvstesting.SyncOK(t, b, s, map[string]bool{web.Name.Key(): true})
		var out strings.Builder
		for _, svc := range []string{"default/web", "default/sticky", "kube-system/kube-dns", "default/empty",
			"default/local-lb", "default/local-none", "default/lb"} {
			e, err := explain.ExplainIPVS(n.IPVS, save(n), svc)
			if err != nil {
				t.Fatalf("Explain(%s): %v", svc, err)
			}
			fmt.Fprintf(&out, "$ berth rules explain %s\n%s\n", svc, e)
		}
		golden.Check(t, fmt.Sprintf("ipvs/explain-ipv%d.golden", f), []byte(out.String()))
	})
}

func ipvsAddrPort(ep proxy.Endpoint) netip.AddrPort { return netip.AddrPortFrom(ep.IP, ep.Port) }

func TestExplainIPVSErrors(t *testing.T) {
	n := newIPVSNode(t, proxy.IPv4)
	if _, err := explain.ExplainIPVS(n.IPVS, save(n), "default/web"); !errors.Is(err, explain.ErrNotProgrammed) {
		t.Errorf("before any sync: err = %v, want ErrNotProgrammed", err)
	}
	ipvstesting.SyncOK(t, newIPVSBackend(t, n), proxytest.ExampleState(proxy.IPv4), nil)
	if _, err := explain.ExplainIPVS(n.IPVS, save(n), "default/nope"); !errors.Is(err, explain.ErrNotProgrammed) {
		t.Errorf("unknown service: err = %v, want ErrNotProgrammed", err)
	}
	for _, bad := range []string{"web", "default/", "/web", "default/web:", "a/b/c"} {
		if _, err := explain.ExplainIPVS(nil, nil, bad); !errors.Is(err, explain.ErrBadServiceName) {
			t.Errorf("%q: err = %v, want ErrBadServiceName", bad, err)
		}
	}
	// One port of a service, and a virtual service gone from the kernel.
	if err := n.IPVS.DelService(ipvs.Service{Addr: proxytest.ServiceIP(proxy.IPv4, 53), Port: 53, Protocol: proxy.UDP}); err != nil {
		t.Fatal(err)
	}
	e, err := explain.ExplainIPVS(n.IPVS, save(n), "kube-system/kube-dns:dns")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Ports) != 1 || e.Ports[0].Protocol != proxy.UDP || len(e.Ports[0].Notes) != 1 ||
		!strings.Contains(e.Ports[0].Notes[0], "no IPVS virtual service for UDP 10.96.0.53:53") {
		t.Errorf("explanation of a port without its virtual service:\n%s", e)
	}
}
