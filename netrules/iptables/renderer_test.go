package iptables_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/netrules/internal/golden"
	"github.com/berthnode/berth/netrules/iptables"
	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// renderWith renders with r and fails the test on an error.
func renderWith(t *testing.T, r *iptables.Renderer, s *proxy.State, changed map[string]bool, existing iptables.ChainSet) iptables.Payload {
	t.Helper()
	p, err := r.Render(s, changed, existing)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return p
}

// tables lists the tables a payload writes.
func tables(p iptables.Payload) []xtables.Table {
	var out []xtables.Table
	for _, t := range p.Tables {
		out = append(out, t.Table)
	}
	return out
}

func TestRendererWritesOnlyWhatChanged(t *testing.T) {
	web := key("default/web:http", proxy.TCP)
	for _, tc := range []struct {
		name string
		// change edits the example state; it returns the changed key, or ""
		// for none.
		change func(s *proxy.State) string
		golden string
		want   []xtables.Table
	}{{
		// An endpoint flip: the service's own chains and nothing else, not
		// even the filter table.
		name: "endpoint flip",
		change: func(s *proxy.State) string {
			sp := proxytest.Service(s, "default/web:http", proxy.TCP)
			sp.ClusterEndpoints = sp.ClusterEndpoints[:2]
			sp.ExternalEndpoints = sp.ClusterEndpoints
			return web
		},
		golden: "renderer-flip.golden",
		want:   []xtables.Table{xtables.TableNAT},
	}, {
		// No change writes nothing.
		name:   "no change",
		change: func(*proxy.State) string { return "" },
		golden: "renderer-none.golden",
	}, {
		// The last endpoint goes: the cluster IP now rejects (filter) and
		// the jump to the service's chain goes (nat).
		name: "no endpoints left",
		change: func(s *proxy.State) string {
			sp := proxytest.Service(s, "default/web:http", proxy.TCP)
			sp.ClusterEndpoints, sp.ExternalEndpoints = nil, nil
			return web
		},
		golden: "renderer-empty.golden",
		want:   []xtables.Table{xtables.TableFilter, xtables.TableNAT},
	}, {
		name: "service removed",
		change: func(s *proxy.State) string {
			s.Services = slicesDelete(s.Services, "default/web:http")
			return web
		},
		golden: "renderer-removed.golden",
		want:   []xtables.Table{xtables.TableNAT},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := iptables.NewRenderer(opts())
			renderWith(t, r, proxytest.ExampleState(proxy.IPv4), nil, nil)
			next := proxytest.ExampleState(proxy.IPv4)
			changed := map[string]bool{}
			if k := tc.change(next); k != "" {
				changed[k] = true
			}
			p := renderWith(t, r, next, changed, nil)
			if diff := cmp.Diff(tc.want, tables(p)); diff != "" {
				t.Errorf("tables written (-want +got):\n%s", diff)
			}
			golden.Check(t, tc.golden, payloadText(p))
			full := mustRender(t, next, opts(), nil, nil)
			if p.Rules != full.Rules || p.TopRules != full.TopRules {
				t.Errorf("partial payload counts %d rules (%d top), a full render %d (%d)", p.Rules, p.TopRules, full.Rules, full.TopRules)
			}
		})
	}
}

func TestRendererFlipDoesNotGrowWithServices(t *testing.T) {
	// The point of the Renderer: a flip's payload is the size of the
	// service, whatever the number of services.
	size := func(n int) int {
		s := proxytest.ExampleState(proxy.IPv4)
		base := s.Services[0]
		for i := range n {
			sp := base
			sp.Name.Name = strings.Repeat("x", 1+i%7) + string(rune('a'+i%26)) + strings.Repeat("y", i/26)
			sp.ClusterIPs = nil
			sp.NodePort = 0
			s.Services = append(s.Services, sp)
		}
		proxytest.SortServices(s.Services)
		r := iptables.NewRenderer(opts())
		renderWith(t, r, s, nil, nil)
		sp := proxytest.Service(s, "default/web:http", proxy.TCP)
		sp.ClusterEndpoints = sp.ClusterEndpoints[:1]
		p := renderWith(t, r, s, map[string]bool{key("default/web:http", proxy.TCP): true}, nil)
		return p.Bytes()
	}
	if small, large := size(1), size(300); small != large {
		t.Errorf("a flip's payload is %d bytes with 1 other service and %d with 300", small, large)
	}
}

func TestRendererInvalidateReplans(t *testing.T) {
	r := iptables.NewRenderer(opts())
	s := proxytest.ExampleState(proxy.IPv4)
	full := renderWith(t, r, s, nil, nil)
	r.Invalidate()
	// With nothing remembered, a partial render plans everything and
	// rewrites the top-level chains, as Render does.
	p := renderWith(t, r, s, map[string]bool{}, full.Chains)
	if diff := cmp.Diff(payloadText(mustRender(t, s, opts(), map[string]bool{}, full.Chains)), payloadText(p)); diff != "" {
		t.Errorf("after Invalidate (-Render +Renderer):\n%s", diff)
	}
}

// FuzzRenderer: from any state, partial renders through any two more
// states leave exactly the rules a full render of the last one does, and
// count them right.
func FuzzRenderer(f *testing.F) {
	f.Add([]byte("seed"), []byte("other"), []byte("third"))
	f.Add([]byte{6, 3, 1, 'a', 2, 'b', 'c', 0x50, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, []byte{4, 1, 0, 0, 0, 0}, []byte{6, 3, 1, 'a', 2, 'b', 'c'})
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		family := proxy.IPv4
		if len(a) > 0 && a[0]%2 == 0 {
			family = proxy.IPv6
		}
		o := iptables.RenderOptions{MasqueradeBit: len(a) % 32, TCPBeLiberal: len(b)%2 == 0}
		fake := iptablestesting.NewFake(iptablestesting.FakeConfig{})
		r := iptables.NewRenderer(o)
		prev := fuzzState(family, a)
		if !applyRendered(t, fake, r, family, prev, nil) {
			return
		}
		for _, data := range [][]byte{b, c} {
			next := fuzzState(family, data)
			next.ClusterCIDRs, next.MasqueradeAll = prev.ClusterCIDRs, prev.MasqueradeAll
			next.NodePortAddresses, next.NodeIPs = prev.NodePortAddresses, prev.NodeIPs
			if !applyRendered(t, fake, r, family, next, changedKeys(prev, next)) {
				return
			}
			want, err := iptables.Render(next, o, nil, nil)
			if errors.Is(err, iptables.ErrInvalidState) {
				// A port listed twice that did not change: a partial render
				// checks only the changed ports (Compute lists each once).
				return
			}
			if err != nil {
				t.Fatalf("full Render of a state the Renderer took: %v", err)
			}
			got := berthRules(savedRules(t, fake, family))
			if diff := cmp.Diff(berthRules(payloadText(want)), got); diff != "" {
				t.Fatalf("after partial renders the rules differ from a full render (-want +got):\n%s", diff)
			}
			n := 0
			for _, rules := range got {
				n += len(rules)
			}
			if n != want.Rules {
				t.Fatalf("the kernel holds %d berth rules, a full render counts %d", n, want.Rules)
			}
			prev = next
		}
	})
}

// applyRendered renders with r and restores into the fake; false when the
// state is one the renderer rejects (after which it must be invalidated,
// and the fuzz run ends).
func applyRendered(t *testing.T, fake *iptablestesting.Fake, r *iptables.Renderer, f proxy.Family, s *proxy.State, changed map[string]bool) bool {
	var existing iptables.ChainSet
	if changed == nil {
		existing = iptables.ChainSet{}
		existing.ParseChains(savedRules(t, fake, f))
	}
	p, err := r.Render(s, changed, existing)
	if errors.Is(err, iptables.ErrInvalidState) || errors.Is(err, iptables.ErrChainNameCollision) {
		return false
	}
	if err != nil {
		t.Fatalf("Render: unexpected error %v", err)
	}
	restoreInto(t, fake, f, p)
	return true
}

func TestRendererRefusesChangesThatMissAPort(t *testing.T) {
	r := iptables.NewRenderer(opts())
	renderWith(t, r, proxytest.ExampleState(proxy.IPv4), nil, nil)
	s := proxytest.ExampleState(proxy.IPv4)
	s.Services = slicesDelete(s.Services, "default/web:http")
	if _, err := r.Render(s, map[string]bool{}, nil); !errors.Is(err, iptables.ErrInvalidState) {
		t.Fatalf("a removed port left out of changed: err = %v, want ErrInvalidState", err)
	}
	// The Renderer forgot everything: the next render plans all again.
	p := renderWith(t, r, s, map[string]bool{}, nil)
	if len(p.Chains) == 0 {
		t.Errorf("the render after a refusal did not plan every port")
	}
}
