package vm

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func validConfig(t *testing.T) Config {
	dir := t.TempDir()
	return Config{
		Name:    "vm1",
		NetNS:   dir, // any existing path will do for Validate
		Address: netip.MustParsePrefix("192.168.200.50/24"),
		Gateway: netip.MustParseAddr("192.168.200.1"),
		WorkDir: filepath.Join(dir, "work"),
		LogDir:  filepath.Join(dir, "logs"),
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*Config)
		wantErr string
	}{
		{name: "valid", modify: func(*Config) {}},
		{name: "long name", modify: func(c *Config) { c.Name = "a-name-too-long" }, wantErr: "name"},
		{name: "upper case", modify: func(c *Config) { c.Name = "VM" }, wantErr: "name"},
		{name: "relative namespace", modify: func(c *Config) { c.NetNS = "lan" }, wantErr: "network namespace"},
		{name: "missing namespace", modify: func(c *Config) { c.NetNS = "/nonexistent/ns" }, wantErr: "network namespace"},
		{name: "no prefix", modify: func(c *Config) { c.Address = netip.MustParsePrefix("192.168.200.50/32") }, wantErr: "address"},
		{name: "IPv6", modify: func(c *Config) { c.Address = netip.MustParsePrefix("fd00::5/64") }, wantErr: "address"},
		{name: "gateway off the LAN", modify: func(c *Config) { c.Gateway = netip.MustParseAddr("10.0.0.1") }, wantErr: "gateway"},
		{name: "no gateway", modify: func(c *Config) { c.Gateway = netip.Addr{} }},
		{name: "relative work dir", modify: func(c *Config) { c.WorkDir = "work" }, wantErr: "work dir"},
		{name: "long work dir", modify: func(c *Config) { c.WorkDir = "/" + strings.Repeat("w", 90) }, wantErr: "socket"},
		{name: "relative file", modify: func(c *Config) { c.Files = []File{{Path: "etc/x"}} }, wantErr: "file"},
		{name: "file with source and data", modify: func(c *Config) {
			c.Files = []File{{Path: "/etc/x", Source: "/etc/hostname", Data: []byte("x")}}
		}, wantErr: "both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig(t)
			tc.modify(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want an error about %q", err, tc.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := validConfig(t).withDefaults()
	got := []any{cfg.Bridge, cfg.MemoryMiB, cfg.CPUs, cfg.BootTimeout, cfg.DNS}
	want := []any{DefaultBridge, DefaultMemoryMiB, DefaultCPUs, DefaultBootTimeout, []netip.Addr{cfg.Gateway}}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}
