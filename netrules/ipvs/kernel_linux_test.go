package ipvs_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	goipt "github.com/coreos/go-iptables/iptables"
	"github.com/google/go-cmp/cmp"

	ipt "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/ipvs"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// These tests run the part of IPVS mode this machine's kernel has — the
// iptables rules — in network namespaces of their own, with the fake IPVS
// table. This kernel has neither IPVS nor dummy interfaces: the VM test
// (test/vm/node) runs those.

type nsExec struct{ n *proxytest.Netns }

func (e nsExec) Run(ctx context.Context, stdin []byte, name string, args ...string) (out []byte, err error) {
	e.n.Do(func() { out, err = xtables.OSExec{}.Run(ctx, stdin, name, args...) })
	return out, err
}

type nsHooks struct {
	n   *proxytest.Netns
	ipt *goipt.IPTables
}

func (h nsHooks) Exists(table, chain string, rule ...string) (ok bool, err error) {
	h.n.Do(func() { ok, err = h.ipt.Exists(table, chain, rule...) })
	return ok, err
}

func (h nsHooks) Insert(table, chain string, pos int, rule ...string) (err error) {
	h.n.Do(func() { err = h.ipt.Insert(table, chain, pos, rule...) })
	return err
}

// TestKernelRules syncs the example state with the kernel's iptables:
// iptables-save must give back exactly what RenderRules wrote (so that the
// explanation reads the kernel's rules), the hooks once, and foreign rules
// untouched.
func TestKernelRules(t *testing.T) {
	proxytest.RequireRoot(t)
	families(t, func(t *testing.T, f proxy.Family) {
		ns := proxytest.NewNetns(t)
		ex := nsExec{ns}
		if _, err := ex.Run(context.Background(), nil, "iptables", "--version"); err != nil {
			t.Skipf("skipping: no iptables: %v", err)
		}
		bin, proto := "iptables", goipt.ProtocolIPv4
		if f == proxy.IPv6 {
			bin, proto = "ip6tables", goipt.ProtocolIPv6
		}
		h := nsHooks{n: ns}
		var err error
		ns.Do(func() { h.ipt, err = goipt.New(goipt.IPFamily(proto), goipt.Timeout(5)) })
		if err != nil {
			t.Fatal(err)
		}
		foreign := "*nat\n:FOREIGN - [0:0]\n-A FOREIGN -j RETURN\n-A PREROUTING -j FOREIGN\nCOMMIT\n"
		if _, err := ex.Run(context.Background(), []byte(foreign), bin+"-restore", "--noflush"); err != nil {
			t.Fatal(err)
		}
		n := newNode(t, f)
		b := newBackend(t, n, func(c *ipvs.Config) { c.Exec, c.Hooks = ex, h })
		s := proxytest.ExampleState(f)
		ipvstesting.SyncOK(t, b, s, nil)
		ipvstesting.SyncOK(t, b, s, nil)
		rules := render(t, s)
		for _, td := range rules.Tables {
			out, err := ex.Run(context.Background(), nil, bin+"-save", "-t", string(td.Table))
			if err != nil {
				t.Fatal(err)
			}
			saved := ipt.Rules(out)
			for chain, want := range ipt.Rules(td.Data) {
				if diff := cmp.Diff(want, saved[chain]); diff != "" {
					t.Errorf("%s as saved by the kernel (-rendered +saved):\n%s", chain, diff)
				}
			}
			for _, hk := range ipvs.HookRules() {
				if hk.Table != td.Table {
					continue
				}
				target := "-j " + hk.Rule[len(hk.Rule)-1]
				if n := countSuffix(saved[string(hk.Table)+" "+hk.Chain], target); n != 1 {
					t.Errorf("%s %s: %d jumps to %s: %q", hk.Table, hk.Chain, n, target, saved[string(hk.Table)+" "+hk.Chain])
				}
			}
			if td.Table == xtables.TableNAT && !slices.Contains(saved["nat PREROUTING"], "-j FOREIGN") {
				t.Errorf("the foreign jump is gone: %q", saved["nat PREROUTING"])
			}
		}
	})
}

func countSuffix(rules []string, suffix string) int {
	n := 0
	for _, r := range rules {
		if strings.HasSuffix(r, suffix) {
			n++
		}
	}
	return n
}
