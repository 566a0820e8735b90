package vm

import (
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMacFor(t *testing.T) {
	tests := []struct {
		ip   string
		want string
	}{
		{ip: "192.168.200.50", want: "52:54:00:a8:c8:32"},
		{ip: "10.0.0.1", want: "52:54:00:00:00:01"},
	}
	for _, tc := range tests {
		if got := macFor(netip.MustParseAddr(tc.ip)).String(); got != tc.want {
			t.Errorf("macFor(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
}

func TestNetworkUnit(t *testing.T) {
	addr := netip.MustParsePrefix("192.168.200.50/24")
	gw := netip.MustParseAddr("192.168.200.1")
	tests := []struct {
		name string
		gw   netip.Addr
		dns  []netip.Addr
		want string
	}{
		{
			name: "gateway and DNS",
			gw:   gw,
			dns:  []netip.Addr{gw},
			want: `[Match]
MACAddress=52:54:00:a8:c8:32

[Link]
RequiredForOnline=yes

[Network]
Address=192.168.200.50/24
Gateway=192.168.200.1
DNS=192.168.200.1
LinkLocalAddressing=no
IPv6AcceptRA=no
`,
		},
		{
			name: "LAN only",
			want: `[Match]
MACAddress=52:54:00:a8:c8:32

[Link]
RequiredForOnline=yes

[Network]
Address=192.168.200.50/24
LinkLocalAddressing=no
IPv6AcceptRA=no
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := networkUnit(macFor(addr.Addr()), addr, tc.gw, tc.dns)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("networkUnit (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteSeed(t *testing.T) {
	src := t.TempDir()
	agentBin := filepath.Join(src, "agent")
	if err := os.WriteFile(agentBin, []byte("#!agent"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostFile := filepath.Join(src, "berth")
	if err := os.WriteFile(hostFile, []byte("binary"), 0o750); err != nil {
		t.Fatal(err)
	}
	cfg := validConfig(t)
	cfg.Files = []File{
		{Path: "/usr/local/bin/berth", Source: hostFile},
		{Path: "/etc/berth/config.yaml", Data: []byte("a: b\n"), Mode: 0o600},
		// Configured files win over the generated ones.
		{Path: "/etc/resolv.conf", Data: []byte("nameserver 192.168.200.2\n")},
	}
	cfg = cfg.withDefaults()
	seed := t.TempDir()
	if err := writeSeed(seed, agentBin, seedFileSet(cfg)); err != nil {
		t.Fatal(err)
	}
	type file struct {
		Content string
		Mode    fs.FileMode
	}
	got := map[string]file{}
	err := filepath.WalkDir(seed, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(seed, path)
		got[rel] = file{string(data), info.Mode().Perm()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]file{
		"agent":                       {"#!agent", 0o755},
		"files/usr/local/bin/berth":   {"binary", 0o750},
		"files/etc/berth/config.yaml": {"a: b\n", 0o600},
		"files/etc/resolv.conf":       {"nameserver 192.168.200.2\n", 0o644},
		"files/etc/hostname":          {"vm1\n", 0o644},
		"files/etc/hosts":             {"127.0.0.1\tlocalhost\n::1\tlocalhost\n192.168.200.50\tvm1\n", 0o644},
		"files/etc/systemd/network/10-berth-vm.network": {networkUnit(macFor(cfg.Address.Addr()), cfg.Address, cfg.Gateway, cfg.DNS), 0o644},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("seed (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(seed, seedXfer)); err != nil {
		t.Errorf("transfer folder: %v", err)
	}
}
