package ipvs_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"

	"github.com/berthnode/berth/netrules/ipvs"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/proxy/proxytest"
)

// failingExec runs the fake iptables, but a binary whose name contains
// failOn exits with status 1 and stderr.
type failingExec struct {
	xtables.Exec
	failOn, stderr string
}

func (e *failingExec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if e.failOn != "" && strings.Contains(name, e.failOn) {
		return nil, &xtables.ExitError{Command: name, Code: 1, Stderr: e.stderr}
	}
	return e.Exec.Run(ctx, stdin, name, args...)
}

func TestSysctls(t *testing.T) {
	for _, tc := range []struct {
		release   string
		strictARP bool
		want      map[string]string
	}{
		{release: "6.8.0-45-generic", want: map[string]string{
			"net.ipv4.vs.conntrack": "1", "net.ipv4.vs.expire_nodest_conn": "1", "net.ipv4.vs.expire_quiescent_template": "1",
			"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1",
			// Left as the kernel has it from 5.9 on.
			"net.ipv4.vs.conn_reuse_mode": "1", "net.ipv4.conf.all.arp_ignore": "0",
		}},
		{release: "5.4.0-150-generic", strictARP: true, want: map[string]string{
			"net.ipv4.vs.conn_reuse_mode": "0", "net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2",
		}},
	} {
		t.Run(tc.release, func(t *testing.T) {
			n := newNode(t, proxy.IPv4)
			if err := os.WriteFile(filepath.Join(n.ProcRoot, "sys/kernel/osrelease"), []byte(tc.release+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			b := newBackend(t, n, func(c *ipvs.Config) { c.StrictARP = tc.strictARP })
			ipvstesting.SyncOK(t, b, proxytest.ExampleState(proxy.IPv4), nil)
			for name, v := range tc.want {
				if got := n.Sysctl(name); got != v {
					t.Errorf("%s = %q, want %q", name, got, v)
				}
			}
		})
	}
}

func TestNoIPVS(t *testing.T) {
	n := newNode(t, proxy.IPv4)
	if err := os.Remove(filepath.Join(n.ProcRoot, "net/ip_vs")); err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, n)
	_, ctx := ktesting.NewTestContext(t)
	_, err := b.Sync(ctx, proxytest.ExampleState(proxy.IPv4), nil)
	if !errors.Is(err, ipvs.ErrNoIPVS) || !strings.Contains(err.Error(), "modprobe ip_vs") {
		t.Errorf("err = %v, want ErrNoIPVS saying how to load the modules", err)
	}
	if c := n.IPVS.Calls(); len(c) != 0 {
		t.Errorf("IPVS calls without IPVS: %q", c)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := ipvs.Config{Family: proxy.IPv4}
	if err := ok.Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	for name, mod := range map[string]func(*ipvs.Config){
		"family":        func(c *ipvs.Config) { c.Family = 5 },
		"scheduler":     func(c *ipvs.Config) { c.Scheduler = "random" },
		"mark bit":      func(c *ipvs.Config) { c.MasqueradeBit = 32 },
		"grace period":  func(c *ipvs.Config) { c.GracePeriod = -1 },
		"node ports":    func(c *ipvs.Config) { c.NodePortRange = ipvs.PortRange{Min: 32000, Max: 30000} },
		"exclude CIDRs": func(c *ipvs.Config) { c.ExcludeCIDRs = []netip.Prefix{{}} },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if _, err := ipvs.New(c); err == nil {
			t.Errorf("%s: New took it", name)
		}
	}
	for _, s := range ipvs.Schedulers {
		c := ok
		c.Scheduler = s
		if err := c.Validate(); err != nil {
			t.Errorf("scheduler %s: %v", s, err)
		}
	}
}

// TestTimeouts: the IPVS session timeouts of the configuration are set at
// the first sync, zero ones left as they are; without any, none is set.
func TestTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  ipvs.Timeouts
	}{
		{"all three", ipvs.Timeouts{TCP: 900 * time.Second, TCPFin: 30 * time.Second, UDP: 60 * time.Second}},
		{"tcp only", ipvs.Timeouts{TCP: 900 * time.Second}},
		{"none", ipvs.Timeouts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, proxy.IPv4)
			b := newBackend(t, n, func(c *ipvs.Config) { c.Timeouts = tc.set })
			ipvstesting.SyncOK(t, b, proxytest.ExampleState(proxy.IPv4), nil)
			ipvstesting.SyncOK(t, b, proxytest.ExampleState(proxy.IPv4), nil)
			if got := n.IPVS.Timeouts(); got != tc.set {
				t.Errorf("timeouts %+v, want %+v", got, tc.set)
			}
			calls := 0
			for _, c := range n.IPVS.Calls() {
				if strings.HasPrefix(c, "SetTimeouts") {
					calls++
				}
			}
			if want := map[bool]int{true: 0, false: 1}[tc.set == ipvs.Timeouts{}]; calls != want {
				t.Errorf("%d SetTimeouts calls over two syncs, want %d", calls, want)
			}
		})
	}
}
