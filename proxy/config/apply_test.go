package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
)

func TestConntrackSysctls(t *testing.T) {
	def := defaults().Conntrack
	for _, tc := range []struct {
		name           string
		c              Conntrack
		numCPU, curMax int
		want           map[string]string
	}{
		{"kube-proxy's defaults, 2 CPUs: the minimum wins", def, 2, 65536, map[string]string{
			"net.netfilter.nf_conntrack_max":                      "131072",
			"net.netfilter.nf_conntrack_tcp_timeout_established": "86400",
			"net.netfilter.nf_conntrack_tcp_timeout_close_wait":  "3600",
		}},
		{"8 CPUs: per core", def, 8, 65536, map[string]string{
			"net.netfilter.nf_conntrack_max":                      "262144",
			"net.netfilter.nf_conntrack_tcp_timeout_established": "86400",
			"net.netfilter.nf_conntrack_tcp_timeout_close_wait":  "3600",
		}},
		{"the limit is never lowered", def, 2, 1 << 20, map[string]string{
			"net.netfilter.nf_conntrack_tcp_timeout_established": "86400",
			"net.netfilter.nf_conntrack_tcp_timeout_close_wait":  "3600",
		}},
		{"capped at 1Mi", Conntrack{MaxPerCore: 1 << 20}, 4, 0, map[string]string{"net.netfilter.nf_conntrack_max": "1048576"}},
		{"maxPerCore 0 leaves the limit", Conntrack{Min: 1 << 20}, 4, 0, map[string]string{}},
		{"UDP timeouts and tcpBeLiberal", Conntrack{UDPTimeout: 30 * time.Second, UDPStreamTimeout: 2 * time.Minute, TCPBeLiberal: true}, 4, 0, map[string]string{
			"net.netfilter.nf_conntrack_udp_timeout":        "30",
			"net.netfilter.nf_conntrack_udp_timeout_stream": "120",
			"net.netfilter.nf_conntrack_tcp_be_liberal":     "1",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.c.Sysctls(tc.numCPU, tc.curMax)); diff != "" {
				t.Errorf("Sysctls(%d, %d) (-want +got):\n%s", tc.numCPU, tc.curMax, diff)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Settings)
		want   []string
	}{
		{"defaults in iptables mode: localhost node ports", nil, []string{"iptables.localhostNodePorts"}},
		{"localhost node ports off", func(s *Settings) { s.LocalhostNodePorts = false }, nil},
		{"IPVS mode applies its settings", func(s *Settings) {
			s.Mode, s.IPVS = ModeIPVS, IPVS{Scheduler: "lc", StrictARP: true, TCPTimeout: time.Minute, UDPTimeout: time.Second}
		}, nil},
		{"IPVS settings in iptables mode", func(s *Settings) {
			s.LocalhostNodePorts = false
			s.IPVS = IPVS{Scheduler: "lc", StrictARP: true, ExcludeCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
				TCPTimeout: time.Minute, TCPFinTimeout: time.Second, UDPTimeout: time.Second}
		}, []string{"ipvs.scheduler", "ipvs.strictARP", "ipvs.excludeCIDRs", "ipvs.tcpTimeout", "ipvs.tcpFinTimeout", "ipvs.udpTimeout"}},
		{"hostnameOverride", func(s *Settings) { s.Mode, s.HostnameOverride = ModeIPVS, "node-a" }, []string{"hostnameOverride"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := defaults()
			s.IPVS.Scheduler = "rr"
			if tc.modify != nil {
				tc.modify(&s)
			}
			var got []string
			for _, r := range s.Refused() {
				if r.Reason == "" || r.Value == "" {
					t.Errorf("refusal %+v without value or reason", r)
				}
				got = append(got, r.Setting)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Refused() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestResolvedRefusals: what Resolve makes of an empty configuration
// refuses only localhostNodePorts, and LogRefused logs it with its reason.
func TestResolvedRefusals(t *testing.T) {
	s, err := Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	s.LogRefused(funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{}))
	if len(lines) != 1 || !strings.Contains(lines[0], `"setting"="iptables.localhostNodePorts"`) || !strings.Contains(lines[0], "route_localnet") {
		t.Errorf("logged %q, want localhostNodePorts refused with its reason", lines)
	}
}
