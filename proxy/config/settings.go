package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mode is a proxy mode.
type Mode string

// The proxy modes of kube-proxy on Linux.
const (
	ModeIPTables Mode = "iptables"
	ModeIPVS     Mode = "ipvs"
	ModeNFTables Mode = "nftables"
)

// Settings are the resolved kube-proxy settings berth uses: defaulted,
// validated, parsed, with the mode-specific fields of the mode picked.
type Settings struct {
	// Mode is the proxy mode ("" in the configuration: iptables).
	Mode Mode
	// HostnameOverride is the node name kube-proxy would use ("" for the
	// hostname); berth has its own, this is for cross-checking.
	HostnameOverride string
	// HealthzBindAddress and MetricsBindAddress are host:port.
	HealthzBindAddress, MetricsBindAddress string
	// MinSyncPeriod and SyncPeriod are the mode's sync periods.
	MinSyncPeriod, SyncPeriod time.Duration
	// ClusterCIDRs are clusterCIDR's CIDRs (at most one per family), for
	// detect-local.
	ClusterCIDRs []netip.Prefix
	// MasqueradeAll masquerades all cluster-IP traffic.
	MasqueradeAll bool
	// MasqueradeBit is the fwmark bit that marks packets to masquerade.
	MasqueradeBit int
	// LocalhostNodePorts lets node ports answer on 127.0.0.1 (iptables,
	// IPv4).
	LocalhostNodePorts bool
	// NodePortAddresses are the CIDRs node ports answer on (empty: all),
	// with the keywords "localhost" and "all" expanded.
	NodePortAddresses []netip.Prefix
	// NodePortPrimary is the "primary" keyword: the node's primary IPs.
	NodePortPrimary bool
	// Conntrack are the conntrack settings.
	Conntrack Conntrack
	// IPVS are the IPVS settings.
	IPVS IPVS
}

// MasqueradeMark returns the fwmark of MasqueradeBit (0x4000 for 14).
func (s *Settings) MasqueradeMark() uint32 { return 1 << uint(s.MasqueradeBit) }

// Conntrack are kube-proxy's conntrack settings.
type Conntrack struct {
	// MaxPerCore is the NAT connections to track per CPU (0: leave the
	// limit); Min is the least to allocate.
	MaxPerCore, Min int32
	// TCPEstablishedTimeout and TCPCloseWaitTimeout are the idle timeouts
	// of TCP entries (0: leave as is).
	TCPEstablishedTimeout, TCPCloseWaitTimeout time.Duration
	// TCPBeLiberal stops conntrack marking out-of-window packets INVALID.
	TCPBeLiberal bool
	// UDPTimeout and UDPStreamTimeout are the idle timeouts of unreplied
	// and assured UDP entries (0: leave as is).
	UDPTimeout, UDPStreamTimeout time.Duration
}

// IPVS are kube-proxy's IPVS settings.
type IPVS struct {
	// Scheduler is the IPVS scheduler ("rr" by default).
	Scheduler string
	// StrictARP stops the node answering ARP for addresses on the dummy
	// interface.
	StrictARP bool
	// ExcludeCIDRs are virtual servers cleanup must not touch.
	ExcludeCIDRs []netip.Prefix
	// TCPTimeout, TCPFinTimeout and UDPTimeout are IPVS session timeouts
	// (0: leave as is).
	TCPTimeout, TCPFinTimeout, UDPTimeout time.Duration
}

// ipvsSchedulers are the schedulers the kernel's IPVS offers.
var ipvsSchedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"}

// Resolve defaults a copy of c and resolves it into Settings, rejecting
// values kube-proxy rejects and those berth cannot honour.
func Resolve(c *KubeProxyConfiguration) (*Settings, error) {
	if c == nil {
		c = &KubeProxyConfiguration{}
	}
	c = c.DeepCopy()
	SetDefaults(c)
	s := &Settings{
		Mode:               Mode(c.Mode),
		HostnameOverride:   strings.ToLower(strings.TrimSpace(c.HostnameOverride)),
		HealthzBindAddress: c.HealthzBindAddress,
		MetricsBindAddress: c.MetricsBindAddress,
		LocalhostNodePorts: *c.IPTables.LocalhostNodePorts,
		Conntrack:          conntrackSettings(c),
		IPVS: IPVS{
			Scheduler:     c.IPVS.Scheduler,
			StrictARP:     c.IPVS.StrictARP,
			TCPTimeout:    c.IPVS.TCPTimeout.Duration,
			TCPFinTimeout: c.IPVS.TCPFinTimeout.Duration,
			UDPTimeout:    c.IPVS.UDPTimeout.Duration,
		},
	}
	var errs []error
	if err := s.setModeFields(c); err != nil {
		errs = append(errs, err)
	}
	if s.SyncPeriod <= 0 {
		errs = append(errs, fmt.Errorf("syncPeriod %v must be positive", s.SyncPeriod))
	}
	if s.MinSyncPeriod < 0 || s.MinSyncPeriod > s.SyncPeriod {
		errs = append(errs, fmt.Errorf("minSyncPeriod %v must be between 0 and syncPeriod %v", s.MinSyncPeriod, s.SyncPeriod))
	}
	if s.MasqueradeBit < 0 || s.MasqueradeBit > 31 {
		errs = append(errs, fmt.Errorf("masqueradeBit %d out of range 0-31", s.MasqueradeBit))
	}
	for _, a := range []struct{ name, addr string }{{"healthzBindAddress", s.HealthzBindAddress}, {"metricsBindAddress", s.MetricsBindAddress}} {
		if err := checkHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", a.name, a.addr, err))
		}
	}
	if c.DetectLocalMode != "" && c.DetectLocalMode != "ClusterCIDR" {
		errs = append(errs, fmt.Errorf("detectLocalMode %q: berth supports ClusterCIDR only", c.DetectLocalMode))
	}
	var err error
	if s.ClusterCIDRs, err = parseClusterCIDRs(c.ClusterCIDR); err != nil {
		errs = append(errs, err)
	}
	if s.NodePortAddresses, s.NodePortPrimary, err = parseNodePortAddresses(c.NodePortAddresses); err != nil {
		errs = append(errs, err)
	}
	if s.IPVS.ExcludeCIDRs, err = parseCIDRs("ipvs.excludeCIDRs", c.IPVS.ExcludeCIDRs); err != nil {
		errs = append(errs, err)
	}
	if s.IPVS.Scheduler == "" {
		s.IPVS.Scheduler = "rr"
	}
	if !slices.Contains(ipvsSchedulers, s.IPVS.Scheduler) {
		errs = append(errs, fmt.Errorf("ipvs.scheduler %q: want one of %v", s.IPVS.Scheduler, ipvsSchedulers))
	}
	if err := checkConntrack(s.Conntrack); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kube-proxy configuration: %w", err)
	}
	return s, nil
}

// setModeFields picks the sync periods, masqueradeAll and masqueradeBit of
// the mode (kube-proxy keeps them per mode).
func (s *Settings) setModeFields(c *KubeProxyConfiguration) error {
	bit := c.IPTables.MasqueradeBit
	switch s.Mode {
	case "", ModeIPTables:
		s.Mode = ModeIPTables
		s.MinSyncPeriod, s.SyncPeriod = c.IPTables.MinSyncPeriod.Duration, c.IPTables.SyncPeriod.Duration
		s.MasqueradeAll = c.IPTables.MasqueradeAll
	case ModeIPVS:
		s.MinSyncPeriod, s.SyncPeriod = c.IPVS.MinSyncPeriod.Duration, c.IPVS.SyncPeriod.Duration
		s.MasqueradeAll = c.IPTables.MasqueradeAll
	case ModeNFTables:
		s.MinSyncPeriod, s.SyncPeriod = c.NFTables.MinSyncPeriod.Duration, c.NFTables.SyncPeriod.Duration
		s.MasqueradeAll = c.NFTables.MasqueradeAll
		bit = c.NFTables.MasqueradeBit
	default:
		return fmt.Errorf("mode %q: want iptables, ipvs or nftables", c.Mode)
	}
	s.MasqueradeBit = int(*bit)
	return nil
}

func conntrackSettings(c *KubeProxyConfiguration) Conntrack {
	return Conntrack{
		MaxPerCore:            *c.Conntrack.MaxPerCore,
		Min:                   *c.Conntrack.Min,
		TCPEstablishedTimeout: c.Conntrack.TCPEstablishedTimeout.Duration,
		TCPCloseWaitTimeout:   c.Conntrack.TCPCloseWaitTimeout.Duration,
		TCPBeLiberal:          c.Conntrack.TCPBeLiberal,
		UDPTimeout:            c.Conntrack.UDPTimeout.Duration,
		UDPStreamTimeout:      c.Conntrack.UDPStreamTimeout.Duration,
	}
}

func checkConntrack(c Conntrack) error {
	var errs []error
	if c.MaxPerCore < 0 || c.Min < 0 {
		errs = append(errs, fmt.Errorf("conntrack maxPerCore %d and min %d must not be negative", c.MaxPerCore, c.Min))
	}
	for _, d := range []time.Duration{c.TCPEstablishedTimeout, c.TCPCloseWaitTimeout, c.UDPTimeout, c.UDPStreamTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("conntrack timeout %v must not be negative", d))
		}
	}
	return errors.Join(errs...)
}

// parseClusterCIDRs parses clusterCIDR: a CIDR or a comma-separated
// dual-stack pair.
func parseClusterCIDRs(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out, err := parseCIDRs("clusterCIDR", strings.Split(s, ","))
	if err != nil {
		return nil, err
	}
	if len(out) > 2 || (len(out) == 2 && out[0].Addr().Is4() == out[1].Addr().Is4()) {
		return nil, fmt.Errorf("clusterCIDR %q: want one CIDR or one per IP family", s)
	}
	return out, nil
}

func parseCIDRs(field string, in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range in {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", field, s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// parseNodePortAddresses parses nodePortAddresses: CIDRs and the keywords
// "primary", "localhost" and "all".
func parseNodePortAddresses(in []string) ([]netip.Prefix, bool, error) {
	var out []netip.Prefix
	primary := false
	for _, s := range in {
		switch s {
		case "primary":
			primary = true
		case "localhost":
			out = append(out, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		case "all":
			out = append(out, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
		default:
			p, err := parseCIDRs("nodePortAddresses", []string{s})
			if err != nil {
				return nil, false, err
			}
			out = append(out, p...)
		}
	}
	return out, primary, nil
}

// withPort returns addr with port appended when it has none, or
// host:port when addr is empty (kube-proxy's defaulting).
func withPort(addr, host string, port int) string {
	if addr == "" {
		return net.JoinHostPort(host, strconv.Itoa(port))
	}
	if ip, err := netip.ParseAddr(strings.Trim(addr, "[]")); err == nil {
		return net.JoinHostPort(ip.String(), strconv.Itoa(port))
	}
	return addr
}

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q out of range", port)
	}
	return nil
}

func isIPv6(s string) bool {
	ip, err := netip.ParseAddr(s)
	return err == nil && ip.Is6() && !ip.Is4In6()
}
