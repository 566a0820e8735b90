package xtables_test

import (
	"errors"
	"testing"

	"k8s.io/klog/v2/ktesting"

	iptablestesting "github.com/berthnode/berth/netrules/iptables/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

// TestApplierUsesTheDetectedBackend: the restore and save binaries are
// those of the backend "iptables --version" names (the fake answers only
// to its own), and a rejected input is a RestoreError naming its line.
func TestApplierUsesTheDetectedBackend(t *testing.T) {
	for _, tc := range []struct {
		legacy  bool
		family  proxy.Family
		restore string
	}{
		{false, proxy.IPv4, "iptables-nft-restore"},
		{true, proxy.IPv4, "iptables-legacy-restore"},
		{false, proxy.IPv6, "ip6tables-nft-restore"},
	} {
		_, ctx := ktesting.NewTestContext(t)
		fake := iptablestesting.NewFake(iptablestesting.FakeConfig{Legacy: tc.legacy})
		a := &xtables.Applier{Family: tc.family, Backend: "test", Exec: fake, Hooks: fake.Hooks(tc.family)}
		in := xtables.TableData{Table: xtables.TableNAT, Data: []byte("*nat\n:BERTH-T - [0:0]\n-A BERTH-T -j RETURN\nCOMMIT\n")}
		if n, err := a.Restore(ctx, in); err != nil || n != len(in.Data) {
			t.Fatalf("Restore = %d, %v; want %d, nil", n, err, len(in.Data))
		}
		if got := a.Binaries().Restore; got != tc.restore {
			t.Errorf("restore binary = %q, want %q", got, tc.restore)
		}
		rs := xtables.ParseRuleset(fake.Save(tc.family, xtables.TableNAT))
		if got := rs.Rules(xtables.TableNAT, "BERTH-T"); len(got) != 1 || got[0] != "-j RETURN" {
			t.Errorf("nat BERTH-T = %q after the restore", got)
		}
		bad := xtables.TableData{Table: xtables.TableNAT, Data: []byte("*nat\n-A BERTH-T -j NOWHERE\nCOMMIT\n")}
		_, err := a.Restore(ctx, bad)
		var re *xtables.RestoreError
		if !errors.As(err, &re) || re.Line != 2 || len(re.Context) == 0 {
			t.Errorf("Restore of a bad input = %v, want a RestoreError naming line 2", err)
		}
	}
}
