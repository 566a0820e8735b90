package podnet

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestRenderConflist(t *testing.T) {
	cases := []struct {
		golden string
		params confParams
	}{
		{"ipv4.conflist", confParams{bridge: "cni0", hairpin: true, podCIDRs: prefixes("10.244.1.0/24")}},
		{"dualstack.conflist", confParams{bridge: "cni0", hairpin: true, podCIDRs: prefixes("10.244.1.0/24", "fd00:10:244:1::/64")}},
		{"ipv6.conflist", confParams{bridge: "cni0", hairpin: true, podCIDRs: prefixes("fd00:10:244:1::/64")}},
		{"mtu-nohairpin.conflist", confParams{bridge: "br-pods", mtu: 1450, podCIDRs: prefixes("10.244.1.0/24")}},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := renderConflist(tc.params)
			if err != nil {
				t.Fatalf("renderConflist: %v", err)
			}
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("config list differs from %s (-want +got; run with -update if intended):\n%s", path, diff)
			}
		})
	}
}

func TestRenderConflistNeedsPodCIDR(t *testing.T) {
	if _, err := renderConflist(confParams{bridge: "cni0"}); err == nil {
		t.Error("renderConflist with no podCIDR succeeded, want an error")
	}
}

func TestWriteIfChanged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net.d") // created on the first write
	path := filepath.Join(dir, "10-berth.conflist")
	steps := []struct {
		data      string
		wantWrote bool
	}{
		{"one\n", true},
		{"one\n", false},
		{"two\n", true},
	}
	var before os.FileInfo
	for i, s := range steps {
		wrote, err := writeIfChanged(dir, "10-berth.conflist", []byte(s.data))
		if err != nil {
			t.Fatalf("step %d: writeIfChanged: %v", i, err)
		}
		if wrote != s.wantWrote {
			t.Errorf("step %d: wrote = %v, want %v", i, wrote, s.wantWrote)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if before != nil && os.SameFile(before, fi) == s.wantWrote {
			t.Errorf("step %d: file replaced = %v, want %v", i, !os.SameFile(before, fi), s.wantWrote)
		}
		before = fi
		if got, _ := os.ReadFile(path); string(got) != s.data {
			t.Errorf("step %d: file holds %q, want %q", i, got, s.data)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("step %d: mode %v, want 0644", i, fi.Mode().Perm())
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("conf dir holds %d files, want only the config list (no temporary files left)", len(entries))
	}
}
