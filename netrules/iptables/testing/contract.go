package testing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"

	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// Subject is one iptables under the contract suite: the fake, or the
// kernel in a network namespace of the test's own.
type Subject struct {
	// Exec runs the iptables binaries on the subject's rules.
	Exec xtables.Exec
	// Hooks checks and inserts rules there (go-iptables for the kernel).
	Hooks xtables.Hooks
}

// RunContract runs the behaviour the iptables backend must have against the
// subjects newSubject returns: a fresh one, with empty tables, per subtest
// and family.
func RunContract(t *testing.T, newSubject func(t *testing.T, f proxy.Family) Subject) {
	cases := []struct {
		name string
		run  func(t *testing.T, c *contract)
	}{
		{"full sync", testFullSync},
		{"partial sync", testPartialSync},
		{"removal", testRemoval},
		{"foreign rules survive", testForeign},
		{"rejected payload keeps the previous rules", testRejected},
		{"restart removes stale chains", testRestart},
	}
	for _, f := range []proxy.Family{proxy.IPv4, proxy.IPv6} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("IPv%d/%s", f, tc.name), func(t *testing.T) {
				tc.run(t, &contract{family: f, subject: newSubject(t, f)})
			})
		}
	}
}

// contract is one subtest's subject and helpers.
type contract struct {
	family  proxy.Family
	subject Subject
}

func (c *contract) backend(t *testing.T) *iptables.Backend {
	t.Helper()
	b, err := iptables.New(iptables.Config{
		Family: c.family, MasqueradeBit: iptables.DefaultMasqueradeBit, Exec: c.subject.Exec, Hooks: c.subject.Hooks,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func (c *contract) sync(t *testing.T, b *iptables.Backend, s *proxy.State, changed map[string]bool) proxy.SyncResult {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	res, err := b.Sync(ctx, s, changed)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return res
}

// refused checks that b refuses a partial sync of s with
// proxy.ErrFullSyncRequired and leaves the rules as they are.
func (c *contract) refused(t *testing.T, b *iptables.Backend, s *proxy.State) {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	before := c.save(t)
	if _, err := b.Sync(ctx, s, map[string]bool{}); !errors.Is(err, proxy.ErrFullSyncRequired) {
		t.Errorf("partial sync without a successful one before it: err = %v, want proxy.ErrFullSyncRequired", err)
	}
	if diff := cmp.Diff(Rules(before), Rules(c.save(t))); diff != "" {
		t.Errorf("a refused sync changed the rules (-before +after):\n%s", diff)
	}
}

// binary is the family's iptables binary base name.
func (c *contract) binary() string {
	if c.family == proxy.IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// save returns iptables-save of both tables.
func (c *contract) save(t *testing.T) []byte {
	t.Helper()
	var out []byte
	for _, table := range []string{"filter", "nat"} {
		b, err := c.subject.Exec.Run(context.Background(), nil, c.binary()+"-save", "-t", table)
		if err != nil {
			t.Fatalf("iptables-save -t %s: %v", table, err)
		}
		out = append(out, b...)
	}
	return out
}

// restore applies foreign rules, as another program would.
func (c *contract) restore(t *testing.T, payload string) {
	t.Helper()
	if _, err := c.subject.Exec.Run(context.Background(), []byte(payload), c.binary()+"-restore", "--noflush"); err != nil {
		t.Fatalf("applying foreign rules: %v", err)
	}
}

// Rules parses iptables-save output or iptables-restore input into the
// rules of each chain, keyed "table CHAIN"; chains declared without rules
// map to an empty list.
func Rules(data []byte) map[string][]string {
	out := map[string][]string{}
	for table, t := range xtables.ParseRuleset(data) {
		for _, name := range t.Chains {
			out[string(table)+" "+name] = []string{}
		}
		for name, rules := range t.Rules {
			out[string(table)+" "+name] = rules
		}
	}
	return out
}

// ours keeps berth's chains and, of the built-in chains, the rules that
// jump to berth's: what the backend owns.
func ours(rules map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, rs := range rules {
		_, name, _ := strings.Cut(k, " ")
		if strings.HasPrefix(name, iptables.ChainPrefix) {
			out[k] = rs
			continue
		}
		for _, r := range rs {
			if strings.Contains(r, "-j "+iptables.ChainPrefix) {
				out[k] = append(out[k], r)
			}
		}
	}
	return out
}

// want is what the kernel must hold for a state: a full render and the
// hooks.
func (c *contract) want(t *testing.T, s *proxy.State) map[string][]string {
	t.Helper()
	p, err := iptables.Render(s, iptables.RenderOptions{MasqueradeBit: iptables.DefaultMasqueradeBit}, nil, nil)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	var all []byte
	for _, td := range p.Tables {
		all = append(all, td.Data...)
	}
	want := Rules(all)
	// The hooks are inserted first in their chains, each before the ones
	// inserted earlier.
	hooks := iptables.HookRules()
	for i := len(hooks) - 1; i >= 0; i-- {
		h := hooks[i]
		k := string(h.Table) + " " + h.Chain
		want[k] = append(want[k], xtables.JoinRule(h.Rule))
	}
	return want
}

// check compares what the subject holds with what the state needs.
func (c *contract) check(t *testing.T, s *proxy.State) {
	t.Helper()
	if diff := cmp.Diff(c.want(t, s), ours(Rules(c.save(t)))); diff != "" {
		t.Errorf("berth's rules differ from a full render of the state (-want +got):\n%s", diff)
	}
}

// count is the number of berth rules the subject holds, hooks excluded.
func (c *contract) count(t *testing.T) int {
	t.Helper()
	n := 0
	for k, rs := range ours(Rules(c.save(t))) {
		if _, name, _ := strings.Cut(k, " "); strings.HasPrefix(name, iptables.ChainPrefix) {
			n += len(rs)
		}
	}
	return n
}

func testFullSync(t *testing.T, c *contract) {
	b := c.backend(t)
	s := proxytest.ExampleState(c.family)
	// The caller (the proxier) asks a full first sync: a partial one is
	// refused, and changes nothing.
	c.refused(t, b, s)
	res := c.sync(t, b, s, nil)
	if !res.Full {
		t.Errorf("first sync: Full = false, want true")
	}
	c.check(t, s)
	if n := c.count(t); res.Rules != n {
		t.Errorf("SyncResult.Rules = %d, the kernel holds %d", res.Rules, n)
	}
	// Again, with nothing changed: same rules, hooks not duplicated.
	c.sync(t, b, s, nil)
	c.check(t, s)
}

func testPartialSync(t *testing.T, c *contract) {
	b := c.backend(t)
	s := proxytest.ExampleState(c.family)
	c.sync(t, b, s, nil)
	web := proxytest.Service(s, "default/web:http", proxy.TCP)
	web.ClusterEndpoints = append(web.ClusterEndpoints[:1:1], proxytest.Endpoint(c.family, 3, 20, 8080), proxytest.Endpoint(c.family, 2, 2, 8080))
	web.ExternalEndpoints = web.ClusterEndpoints
	empty := proxytest.Service(s, "default/empty", proxy.TCP)
	empty.ClusterEndpoints = []proxy.Endpoint{proxytest.Endpoint(c.family, 2, 21, 80)}
	res := c.sync(t, b, s, map[string]bool{web.Name.Key(): true, empty.Name.Key(): true})
	if res.Full {
		t.Errorf("partial sync: Full = true, want false")
	}
	c.check(t, s)
	if n := c.count(t); res.Rules != n {
		t.Errorf("SyncResult.Rules = %d, the kernel holds %d", res.Rules, n)
	}
}

func testRemoval(t *testing.T, c *contract) {
	b := c.backend(t)
	s := proxytest.ExampleState(c.family)
	c.sync(t, b, s, nil)
	var kept []proxy.ServicePort
	changed := map[string]bool{}
	for _, sp := range s.Services {
		if sp.Name.Name == "lb" || sp.Name.Name == "local-lb" || sp.Name.Name == "sticky" {
			changed[sp.Name.Key()] = true
			continue
		}
		kept = append(kept, sp)
	}
	s.Services = kept
	c.sync(t, b, s, changed)
	c.check(t, s)
	clear(changed)
	for _, sp := range s.Services {
		changed[sp.Name.Key()] = true
	}
	s.Services = nil
	c.sync(t, b, s, changed)
	c.check(t, s)
}

func testForeign(t *testing.T, c *contract) {
	b := c.backend(t)
	s := proxytest.ExampleState(c.family)
	c.sync(t, b, s, nil)
	src := proxytest.ExternalNet(c.family).String()
	foreign := "*nat\n:FOREIGN - [0:0]\n-A FOREIGN -s " + src + " -j RETURN\n" +
		"-I PREROUTING 1 -p tcp -m tcp --dport 9999 -j FOREIGN\nCOMMIT\n" +
		"*filter\n:FOREIGN-FILTER - [0:0]\n-A FOREIGN-FILTER -p udp -m udp --dport 9999 -j DROP\n" +
		"-A INPUT -j FOREIGN-FILTER\nCOMMIT\n"
	c.restore(t, foreign)
	before := Rules(c.save(t))
	// Someone also tampers with berth's rules: a full sync mends them.
	c.restore(t, "*nat\n-F "+iptables.ChainServices+"\n-D PREROUTING -m comment --comment \"berth service portals\" -j BERTH-SERVICES\nCOMMIT\n")
	web := proxytest.Service(s, "default/web:http", proxy.TCP)
	web.ClusterEndpoints = web.ClusterEndpoints[1:]
	web.ExternalEndpoints = web.ClusterEndpoints
	c.sync(t, b, s, map[string]bool{web.Name.Key(): true})
	c.sync(t, b, s, nil)
	c.check(t, s)
	after := Rules(c.save(t))
	for _, k := range []string{"nat FOREIGN", "filter FOREIGN-FILTER"} {
		if diff := cmp.Diff(before[k], after[k]); diff != "" {
			t.Errorf("foreign chain %s changed (-before +after):\n%s", k, diff)
		}
	}
	for k, r := range map[string]string{"nat PREROUTING": "-p tcp -m tcp --dport 9999 -j FOREIGN", "filter INPUT": "-j FOREIGN-FILTER"} {
		if !containsRule(after[k], r) {
			t.Errorf("foreign rule %q of %s is gone: %q", r, k, after[k])
		}
	}
}

func containsRule(rules []string, r string) bool {
	for _, x := range rules {
		if x == r {
			return true
		}
	}
	return false
}

func testRejected(t *testing.T, c *contract) {
	b := c.backend(t)
	s := proxytest.ExampleState(c.family)
	c.sync(t, b, s, nil)
	// Another program jumps to the sticky service's chain: berth cannot
	// delete that chain, so the restore removing the service fails.
	p, err := iptables.Render(s, iptables.RenderOptions{MasqueradeBit: iptables.DefaultMasqueradeBit}, nil, nil)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	var svc string
	for ref := range p.Chains {
		if strings.HasPrefix(ref.Chain, "BERTH-SVC-") && strings.HasSuffix(ref.Chain, "-sticky") {
			svc = ref.Chain
		}
	}
	c.restore(t, "*nat\n:FOREIGN - [0:0]\n-A FOREIGN -j "+svc+"\nCOMMIT\n")
	before := c.save(t)
	smaller := proxytest.ExampleState(c.family)
	var kept []proxy.ServicePort
	gone := map[string]bool{}
	for _, sp := range smaller.Services {
		if sp.Name.Name != "sticky" {
			kept = append(kept, sp)
		} else {
			gone[sp.Name.Key()] = true
		}
	}
	smaller.Services = kept
	_, ctx := ktesting.NewTestContext(t)
	_, err = b.Sync(ctx, smaller, gone)
	var re *xtables.RestoreError
	if !errors.As(err, &re) || re.Table != xtables.TableNAT || re.Line == 0 || len(re.Context) == 0 {
		t.Fatalf("Sync removing a chain in use: err = %v, want a RestoreError of the nat table naming the line", err)
	}
	if !strings.Contains(strings.Join(re.Context, "\n"), "-X "+svc) {
		t.Errorf("RestoreError context %q does not quote the failing -X %s", re.Context, svc)
	}
	if diff := cmp.Diff(Rules(before), Rules(c.save(t))); diff != "" {
		t.Errorf("a rejected payload changed the rules (-before +after):\n%s", diff)
	}
	// The other program lets go: a partial sync is refused, the full one
	// the caller asks then converges.
	c.restore(t, "*nat\n:FOREIGN - [0:0]\nCOMMIT\n")
	c.refused(t, b, smaller)
	res := c.sync(t, b, smaller, nil)
	if !res.Full {
		t.Errorf("sync after a failure: Full = false, want true")
	}
	c.check(t, smaller)
}

func testRestart(t *testing.T, c *contract) {
	s := proxytest.ExampleState(c.family)
	c.sync(t, c.backend(t), s, nil)
	// A new berth, with fewer services, finds the old chains and deletes
	// the ones it does not need.
	s.Services = s.Services[:2]
	c.sync(t, c.backend(t), s, nil)
	c.check(t, s)
}
