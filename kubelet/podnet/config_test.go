package podnet

import (
	"strings"
	"testing"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	linktesting "github.com/berthnode/berth/netrules/link/testing"
)

func TestConfigValidate(t *testing.T) {
	nodes := informers.NewSharedInformerFactory(fake.NewClientset(), 0).Core().V1().Nodes()
	valid := func() Config {
		return Config{NodeName: "n1", Nodes: nodes, Routes: linktesting.NewFake(), HairpinMode: true}
	}
	cases := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"everything set", func(c *Config) {
			c.ConfDir, c.ConfName, c.BridgeName, c.MTU = "/tmp/net.d", "99-x.conflist", "br-pods-0123456", 9000
		}, ""},
		{"no node name", func(c *Config) { c.NodeName = "" }, "NodeName is empty"},
		{"no informer", func(c *Config) { c.Nodes = nil }, "nodes informer is nil"},
		{"no routes", func(c *Config) { c.Routes = nil }, "routes is nil"},
		{"relative conf dir", func(c *Config) { c.ConfDir = "net.d" }, `ConfDir "net.d" is not an absolute path`},
		{"conf name with dir", func(c *Config) { c.ConfName = "a/10-berth.conflist" }, "not a file name ending in .conflist"},
		{"conf name without suffix", func(c *Config) { c.ConfName = "10-berth.conf" }, "not a file name ending in .conflist"},
		{"long bridge name", func(c *Config) { c.BridgeName = "br-pods-01234567" }, "longer than 15 bytes"},
		{"bridge name with slash", func(c *Config) { c.BridgeName = "br/0" }, "contains '/'"},
		{"mtu too small", func(c *Config) { c.MTU = 67 }, "MTU 67 is outside 68..65535"},
		{"negative resync", func(c *Config) { c.ResyncPeriod = -1 }, "ResyncPeriod -1ns is negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid()
			tc.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
