package iptables_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthnode/berth/netrules/iptables"
	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// FuzzRender: no state makes Render panic or write a payload that
// iptables-restore (the strict fake) rejects; and a partial sync from any
// state to any other leaves exactly the rules of a full render.
func FuzzRender(f *testing.F) {
	f.Add([]byte("seed"), []byte("other"))
	f.Add([]byte{6, 3, 1, 'a', 2, 'b', 'c', 0x50, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, []byte{4, 1, 0, 0, 0, 0})
	f.Add([]byte("\x04\x05\x03ns/\x01:\xff\xff\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b"), []byte("\x04\x05\x03ns/\x01:"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		family := proxy.IPv4
		if len(a) > 0 && a[0]%2 == 0 {
			family = proxy.IPv6
		}
		before, after := fuzzState(family, a), fuzzState(family, b)
		// The node-wide settings are the same: a change of them makes the
		// backend sync fully.
		after.ClusterCIDRs, after.MasqueradeAll = before.ClusterCIDRs, before.MasqueradeAll
		after.NodePortAddresses, after.NodeIPs = before.NodePortAddresses, before.NodeIPs
		o := iptables.RenderOptions{MasqueradeBit: int(len(a) % 32), TCPBeLiberal: len(b)%2 == 0}
		fake := iptablestesting.NewFake(iptablestesting.FakeConfig{})
		full, ok := renderAndApply(t, fake, family, before, o, nil, nil)
		if !ok {
			return
		}
		changed := changedKeys(before, after)
		if _, ok := renderAndApply(t, fake, family, after, o, changed, full.Chains); !ok {
			return
		}
		want, err := iptables.Render(after, o, nil, nil)
		if err != nil {
			t.Fatalf("full Render of a state a partial Render took: %v", err)
		}
		if diff := cmp.Diff(berthRules(payloadText(want)), berthRules(savedRules(t, fake, family))); diff != "" {
			t.Fatalf("after a partial sync the rules differ from a full render (-want +got):\n%s", diff)
		}
		// A streamed full payload is the same, byte for byte.
		streamed, err := iptables.NewRenderer(o).RenderStreamed(after, full.Chains)
		if err != nil {
			t.Fatalf("RenderStreamed of a state Render took: %v", err)
		}
		plain, err := iptables.Render(after, o, nil, full.Chains)
		if err != nil {
			t.Fatal(err)
		}
		for i, td := range streamed.Tables {
			if got := written(t, td); !bytes.Equal(got, plain.Tables[i].Data) {
				t.Fatalf("streamed %s table differs from Render's:\n%s", td.Table, cmp.Diff(string(plain.Tables[i].Data), string(got)))
			}
		}
	})
}

// renderAndApply renders and restores into the fake; ok is false when the
// state is one Render rejects (as it may, with ErrInvalidState or a name
// collision).
func renderAndApply(t *testing.T, fake *iptablestesting.Fake, f proxy.Family, s *proxy.State, o iptables.RenderOptions, changed map[string]bool, existing iptables.ChainSet) (iptables.Payload, bool) {
	p, err := iptables.Render(s, o, changed, existing)
	if errors.Is(err, iptables.ErrInvalidState) || errors.Is(err, iptables.ErrChainNameCollision) {
		return p, false
	}
	if err != nil {
		t.Fatalf("Render: unexpected error %v", err)
	}
	restoreInto(t, fake, f, p)
	return p, true
}

// restoreInto applies a payload to the fake, which must take it.
func restoreInto(t *testing.T, fake *iptablestesting.Fake, f proxy.Family, p iptables.Payload) {
	t.Helper()
	bin := "iptables-restore"
	if f == proxy.IPv6 {
		bin = "ip6tables-restore"
	}
	for _, td := range p.Tables {
		if _, err := fake.Run(context.Background(), td.Data, bin, "--noflush"); err != nil {
			t.Fatalf("iptables-restore rejected the payload: %v\n%s", err, td.Data)
		}
	}
}

func savedRules(t *testing.T, fake *iptablestesting.Fake, f proxy.Family) []byte {
	return append(fake.Save(f, xtables.TableFilter), fake.Save(f, xtables.TableNAT)...)
}

// berthRules keeps the rules of berth's chains.
func berthRules(data []byte) map[string][]string {
	out := map[string][]string{}
	for k, rs := range iptablestesting.Rules(data) {
		if _, name, _ := strings.Cut(k, " "); strings.HasPrefix(name, iptables.ChainPrefix) {
			out[k] = rs
		}
	}
	return out
}

// changedKeys lists the service ports that differ between two states.
func changedKeys(a, b *proxy.State) map[string]bool {
	byKey := func(s *proxy.State) map[string]proxy.ServicePort {
		m := map[string]proxy.ServicePort{}
		for _, sp := range s.Services {
			m[sp.Name.Key()] = sp
		}
		return m
	}
	ma, mb := byKey(a), byKey(b)
	changed := map[string]bool{}
	for k, sa := range ma {
		if sb, ok := mb[k]; !ok || !cmp.Equal(sa, sb, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})) {
			changed[k] = true
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			changed[k] = true
		}
	}
	return changed
}

// fuzzReader turns fuzz bytes into values; past the end it reads zeros.
type fuzzReader struct{ data []byte }

func (r *fuzzReader) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

func (r *fuzzReader) u16() uint16 { return uint16(r.byte())<<8 | uint16(r.byte()) }

// str reads a short string of any bytes.
func (r *fuzzReader) str() string {
	n := int(r.byte() % 12)
	var b strings.Builder
	for range n {
		b.WriteByte(r.byte())
	}
	return b.String()
}

// addr reads an address from a small pool (so that services share them),
// sometimes of the other family or invalid.
func (r *fuzzReader) addr(f proxy.Family) netip.Addr {
	sel, x := r.byte(), r.byte()
	switch sel % 8 {
	case 0:
		return netip.Addr{}
	case 1:
		f = 10 - f // the other family
	}
	if f == proxy.IPv4 {
		return netip.AddrFrom4([4]byte{10, sel % 4, 0, x % 16})
	}
	return netip.AddrFrom16([16]byte{0xfd, 0, 0, sel % 4, 14: 0, 15: x % 16})
}

func (r *fuzzReader) prefix(f proxy.Family) netip.Prefix {
	a := r.addr(f)
	if !a.IsValid() {
		return netip.Prefix{}
	}
	p, _ := a.Prefix(int(r.byte()) % (a.BitLen() + 1))
	return p
}

func (r *fuzzReader) endpoints(f proxy.Family) []proxy.Endpoint {
	var eps []proxy.Endpoint
	for range r.byte() % 5 {
		// Port 0 (invalid) is rare, so that most states render.
		port := uint16(r.byte()%3) + 1
		if r.byte() == 0xff {
			port = 0
		}
		eps = append(eps, proxy.Endpoint{IP: r.addr(f), Port: port, Local: r.byte()%2 == 0, Ready: true})
	}
	return eps
}

func fuzzState(f proxy.Family, data []byte) *proxy.State {
	r := &fuzzReader{data: data}
	s := &proxy.State{Family: f, MasqueradeAll: r.byte()%4 == 0}
	for range r.byte() % 3 {
		s.ClusterCIDRs = append(s.ClusterCIDRs, r.prefix(f))
	}
	for range r.byte() % 3 {
		s.NodePortAddresses = append(s.NodePortAddresses, r.prefix(f))
	}
	s.NodeIPs = []netip.Addr{r.addr(f)}
	protos := []proxy.Protocol{proxy.TCP, proxy.UDP, proxy.SCTP, proxy.TCP, proxy.UDP, proxy.TCP, proxy.TCP, "ICMP"}
	for range r.byte() % 6 {
		proto := protos[r.byte()%8]
		sp := proxy.ServicePort{
			Name:     proxy.ServicePortName{Namespace: r.str(), Name: r.str(), Port: r.str(), Protocol: proto},
			Protocol: proto, Port: r.u16()%3 + 1, ClusterIPs: []netip.Addr{r.addr(f)},
		}
		flags := r.byte()
		if flags&1 != 0 {
			sp.NodePort = 30000 + r.u16()%4
		}
		if flags&2 != 0 {
			sp.ExternalIPs = []netip.Addr{r.addr(f)}
		}
		if flags&4 != 0 {
			sp.LoadBalancerIPs = []netip.Addr{r.addr(f)}
			sp.SourceRanges = []netip.Prefix{r.prefix(f)}
		}
		if flags&8 != 0 {
			sp.AffinityTimeout = time.Duration(r.u16()) * time.Millisecond * 300
		}
		sp.ExternalLocal, sp.HealthCheckNodePort = flags&16 != 0, uint16(flags&32)
		sp.ClusterEndpoints = r.endpoints(f)
		if flags&64 != 0 {
			sp.ExternalEndpoints = sp.ClusterEndpoints
		} else {
			sp.ExternalEndpoints = r.endpoints(f)
		}
		s.Services = append(s.Services, sp)
	}
	proxytest.SortServices(s.Services)
	return s
}

// TestFuzzStateCoverage keeps the fuzz decoder honest: its states reach the
// renderer's interesting paths.
func TestFuzzStateCoverage(t *testing.T) {
	seen := map[string]bool{}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		data := make([]byte, 200)
		for j := range data {
			data[j] = byte(rnd.Uint32())
		}
		s := fuzzState(proxy.IPv4, data)
		p, err := iptables.Render(s, iptables.RenderOptions{}, nil, nil)
		if err != nil {
			seen["error"] = true
			continue
		}
		text := string(payloadText(p))
		for _, k := range []string{"BERTH-SVX-", "BERTH-FW-", "BERTH-EXT-", "--rcheck", "REJECT", "DROP", "--every"} {
			if strings.Contains(text, k) {
				seen[k] = true
			}
		}
	}
	for _, k := range []string{"error", "BERTH-SVX-", "BERTH-FW-", "BERTH-EXT-", "--rcheck", "REJECT", "DROP", "--every"} {
		if !seen[k] {
			t.Errorf("no decoded state reaches %q", k)
		}
	}
}
