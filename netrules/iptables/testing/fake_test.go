package testing_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

func TestFakeContract(t *testing.T) {
	iptablestesting.RunContract(t, func(t *testing.T, f proxy.Family) iptablestesting.Subject {
		fake := iptablestesting.NewFake(iptablestesting.FakeConfig{})
		return iptablestesting.Subject{Exec: fake, Hooks: fake.Hooks(f)}
	})
}

func restore(t *testing.T, f *iptablestesting.Fake, bin, payload string, args ...string) error {
	t.Helper()
	if args == nil {
		args = []string{"--noflush"}
	}
	_, err := f.Run(context.Background(), []byte(payload), bin, args...)
	return err
}

func TestFakeRejects(t *testing.T) {
	for _, tc := range []struct {
		name, payload string
		line          int
	}{
		{"unknown match", "*nat\n:X - [0:0]\n-A X -m physdev --physdev-in eth0 -j RETURN\nCOMMIT\n", 3},
		{"jump to a missing chain", "*nat\n:X - [0:0]\n-A X -j Y\nCOMMIT\n", 3},
		{"rule in a missing chain", "*nat\n-A Y -j RETURN\nCOMMIT\n", 2},
		{"DNAT in filter", "*filter\n:X - [0:0]\n-A X -p tcp -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n", 3},
		{"REJECT in nat", "*nat\n:X - [0:0]\n-A X -j REJECT\nCOMMIT\n", 3},
		{"DNAT to a port without protocol", "*nat\n:X - [0:0]\n-A X -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n", 3},
		{"address of the other family", "*nat\n:X - [0:0]\n-A X -d fd00::1 -j RETURN\nCOMMIT\n", 3},
		{"chain name too long", "*nat\n:BERTH-SVC-0123456789-abcdefghi - [0:0]\nCOMMIT\n", 2},
		{"unterminated quote", "*nat\n:X - [0:0]\n-A X -m comment --comment \"open -j RETURN\nCOMMIT\n", 3},
		{"deleting a chain in use", "*nat\n:X - [0:0]\n:Y - [0:0]\n-A X -j Y\n-X Y\nCOMMIT\n", 5},
		{"deleting a chain with rules", "*nat\n:X - [0:0]\n-A X -j RETURN\n-X X\nCOMMIT\n", 4},
		{"statistic random", "*nat\n:X - [0:0]\n-A X -m statistic --mode random --probability 0.5 -j RETURN\nCOMMIT\n", 3},
		{"nth packet out of range", "*nat\n:X - [0:0]\n-A X -m statistic --mode nth --every 2 --packet 2 -j RETURN\nCOMMIT\n", 3},
		{"no COMMIT", "*nat\n:X - [0:0]\n", 3},
		{"unknown table", "*mangle\nCOMMIT\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := iptablestesting.NewFake(iptablestesting.FakeConfig{})
			before := f.Save(proxy.IPv4, xtables.TableNAT)
			err := restore(t, f, "iptables-restore", tc.payload)
			var ee *xtables.ExitError
			if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, fmt.Sprintf("Error occurred at line: %d", tc.line)) {
				t.Fatalf("restore: %v, want an ExitError at line %d", err, tc.line)
			}
			if diff := cmp.Diff(string(before), string(f.Save(proxy.IPv4, xtables.TableNAT))); diff != "" {
				t.Errorf("a rejected restore changed nat (-before +after):\n%s", diff)
			}
		})
	}
}

func TestFakeRestoreSemantics(t *testing.T) {
	f := iptablestesting.NewFake(iptablestesting.FakeConfig{})
	must := func(payload string, args ...string) {
		t.Helper()
		if err := restore(t, f, "iptables-restore", payload, args...); err != nil {
			t.Fatal(err)
		}
	}
	must("*nat\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -m comment --comment \"ns/x:y\" -j RETURN\n-A PREROUTING -j A\nCOMMIT\n")
	// --noflush: the declared chain is flushed, the others kept.
	must("*nat\n:B - [0:0]\n-A B -m comment --comment plain -j RETURN\nCOMMIT\n")
	got := iptablestesting.Rules(f.Save(proxy.IPv4, xtables.TableNAT))
	want := map[string][]string{
		"nat PREROUTING": {"-j A"}, "nat INPUT": {}, "nat OUTPUT": {}, "nat POSTROUTING": {},
		"nat A": {"-j B"}, "nat B": {"-m comment --comment plain -j RETURN"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after a --noflush restore (-want +got):\n%s", diff)
	}
	// Without --noflush the table is replaced.
	must("*nat\n:C - [0:0]\nCOMMIT\n", "--wait")
	got = iptablestesting.Rules(f.Save(proxy.IPv4, xtables.TableNAT))
	want = map[string][]string{"nat PREROUTING": {}, "nat INPUT": {}, "nat OUTPUT": {}, "nat POSTROUTING": {}, "nat C": {}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after a flushing restore (-want +got):\n%s", diff)
	}
	// The hooks view: -C compares rules as iptables-save prints them.
	h := f.Hooks(proxy.IPv4)
	spec := []string{"-m", "comment", "--comment", "two words", "-j", "C"}
	if ok, err := h.Exists("nat", "OUTPUT", spec...); ok || err != nil {
		t.Errorf("Exists before Insert = %v, %v", ok, err)
	}
	if err := h.Insert("nat", "OUTPUT", 1, spec...); err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Exists("nat", "OUTPUT", spec...); !ok || err != nil {
		t.Errorf("Exists after Insert = %v, %v", ok, err)
	}
	if err := h.Insert("nat", "OUTPUT", 1, "-j", "MISSING"); err == nil {
		t.Error("Insert of a jump to a missing chain: no error")
	}
}

func TestFakeBinaries(t *testing.T) {
	ctx := context.Background()
	nft := iptablestesting.NewFake(iptablestesting.FakeConfig{})
	legacy := iptablestesting.NewFake(iptablestesting.FakeConfig{Legacy: true})
	for _, tc := range []struct {
		fake *iptablestesting.Fake
		bin  string
		ok   bool
	}{
		{nft, "iptables-nft-save", true},
		{nft, "ip6tables-save", true},
		{nft, "iptables-legacy-save", false},
		{legacy, "ip6tables-legacy-save", true},
		{legacy, "iptables-nft-save", false},
		{nft, "nft", false},
	} {
		_, err := tc.fake.Run(ctx, nil, tc.bin)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.bin, err, tc.ok)
		}
		if !tc.ok && !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("%s: err = %v, want exec.ErrNotFound", tc.bin, err)
		}
	}
	out, err := legacy.Run(ctx, nil, "iptables", "--version")
	if err != nil || !strings.Contains(string(out), "(legacy)") {
		t.Errorf("iptables --version = %q, %v", out, err)
	}
}

// TestTraceMarks checks the tracer's mark arithmetic and chain walking on
// hand-written rules.
func TestTraceMarks(t *testing.T) {
	f := iptablestesting.NewFake(iptablestesting.FakeConfig{})
	payload := "*nat\n:M - [0:0]\n" +
		"-A M -j MARK --or-mark 0x4000\n-A M -j MARK --or-mark 0x1\n" +
		"-A M -m mark --mark 0x1/0x1 -j MARK --xor-mark 0x1\n-A M -j RETURN\n-A M -j MARK --or-mark 0x2\n" +
		"-A PREROUTING -j M\n" +
		"-A POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n-A POSTROUTING -m mark --mark 0x4000 -j MASQUERADE\n" +
		"-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE --random-fully\nCOMMIT\n"
	if err := restore(t, f, "iptables-restore", payload); err != nil {
		t.Fatal(err)
	}
	res := f.Trace(iptablestesting.Packet{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: proxy.TCP, DPort: 80, New: true})
	if res.Err != nil || res.Verdict != iptablestesting.Accept || !res.Masquerade {
		t.Errorf("Trace = %+v, want accepted and masqueraded", res)
	}
	// The mark is exactly 0x4000: 0x1 was set then cleared, and RETURN
	// came before 0x2.
	if last := res.Matched[len(res.Matched)-1]; last != "nat POSTROUTING: -m mark --mark 0x4000 -j MASQUERADE" {
		t.Errorf("last matched rule %q, want the exact-mark MASQUERADE", last)
	}
}
