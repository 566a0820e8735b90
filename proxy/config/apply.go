package config

import (
	"fmt"
	"strconv"
	"time"

	"k8s.io/klog/v2"
)

// maxConntrackLimit caps the scaled nf_conntrack_max, as kube-proxy does.
const maxConntrackLimit = 1 << 20

// Max is the nf_conntrack_max the settings ask for on a node with numCPU
// CPUs: maxPerCore per CPU, at least min, at most 1,048,576; 0 when
// maxPerCore is 0 (leave the limit), as kube-proxy computes it.
func (c Conntrack) Max(numCPU int) int {
	if c.MaxPerCore <= 0 {
		return 0
	}
	return max(int(c.Min), min(int(c.MaxPerCore)*numCPU, maxConntrackLimit))
}

// Sysctls are the kernel parameters that apply the conntrack settings,
// given the node's CPUs and its nf_conntrack_max now: the limit only when
// it must grow (never lowered, as kube-proxy does), each timeout that is
// set, and tcp_be_liberal when it is on (off leaves the kernel's value).
func (c Conntrack) Sysctls(numCPU, curMax int) map[string]string {
	out := map[string]string{}
	if m := c.Max(numCPU); m > curMax {
		out["net.netfilter.nf_conntrack_max"] = strconv.Itoa(m)
	}
	for name, d := range map[string]time.Duration{
		"net.netfilter.nf_conntrack_tcp_timeout_established": c.TCPEstablishedTimeout,
		"net.netfilter.nf_conntrack_tcp_timeout_close_wait":  c.TCPCloseWaitTimeout,
		"net.netfilter.nf_conntrack_udp_timeout":             c.UDPTimeout,
		"net.netfilter.nf_conntrack_udp_timeout_stream":      c.UDPStreamTimeout,
	} {
		if d > 0 {
			out[name] = strconv.Itoa(int(d / time.Second))
		}
	}
	if c.TCPBeLiberal {
		out["net.netfilter.nf_conntrack_tcp_be_liberal"] = "1"
	}
	return out
}

// Refusal is a setting berth reads but does not apply, and why.
type Refusal struct {
	// Setting is the KubeProxyConfiguration field ("iptables.localhostNodePorts").
	Setting string
	// Value is its value.
	Value string
	// Reason says why berth does not apply it, and what to do instead.
	Reason string
}

// Refused lists the settings s holds that berth does not apply in its
// mode. Every other setting Resolve parses is applied: the conntrack ones
// (Conntrack.Sysctls), the IPVS ones in IPVS mode, the rest by the proxy
// and its backends.
func (s *Settings) Refused() []Refusal {
	var out []Refusal
	if s.LocalhostNodePorts && s.Mode == ModeIPTables {
		out = append(out, Refusal{"iptables.localhostNodePorts", "true",
			"berth does not serve node ports on 127.0.0.1 (that needs route_localnet=1, which kube-proxy's nftables and IPVS modes refuse too); " +
				"reach node ports on a node address, and set it false to silence this"})
	}
	if s.HostnameOverride != "" {
		out = append(out, Refusal{"hostnameOverride", s.HostnameOverride,
			"berth's node name comes from its own configuration (nodeName) or the kubelet's --hostname-override"})
	}
	if s.Mode != ModeIPVS {
		ipvs := []Refusal{
			{"ipvs.scheduler", s.IPVS.Scheduler, ""}, {"ipvs.strictARP", strconv.FormatBool(s.IPVS.StrictARP), ""},
			{"ipvs.excludeCIDRs", fmt.Sprint(s.IPVS.ExcludeCIDRs), ""}, {"ipvs.tcpTimeout", s.IPVS.TCPTimeout.String(), ""},
			{"ipvs.tcpFinTimeout", s.IPVS.TCPFinTimeout.String(), ""}, {"ipvs.udpTimeout", s.IPVS.UDPTimeout.String(), ""},
		}
		set := []bool{s.IPVS.Scheduler != "rr", s.IPVS.StrictARP, len(s.IPVS.ExcludeCIDRs) > 0,
			s.IPVS.TCPTimeout != 0, s.IPVS.TCPFinTimeout != 0, s.IPVS.UDPTimeout != 0}
		for i, r := range ipvs {
			if set[i] {
				r.Reason = "only IPVS mode uses it; the mode is " + string(s.Mode)
				out = append(out, r)
			}
		}
	}
	return out
}

// LogRefused logs each setting berth does not apply, with the reason.
func (s *Settings) LogRefused(log klog.Logger) {
	for _, r := range s.Refused() {
		log.Info("Not applying a kube-proxy setting", "setting", r.Setting, "value", r.Value, "reason", r.Reason)
	}
}
