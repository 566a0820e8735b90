package ipvs

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"k8s.io/utils/clock"

	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

// Defaults of the Config fields left zero.
const (
	// DefaultScheduler is kube-proxy's default: round robin.
	DefaultScheduler = "rr"
	// DefaultGracePeriod bounds how long a removed destination drains:
	// 15 minutes, IPVS's own idle timeout of an established TCP connection
	// (ipvsadm --set 900 120 300), after which the kernel would have
	// expired an idle connection anyway. kube-proxy waits without bound.
	DefaultGracePeriod = 15 * time.Minute
	// DefaultCheckInterval is how often Run looks at draining
	// destinations: every minute, as kube-proxy.
	DefaultCheckInterval = time.Minute
	// DefaultProcRoot is where the kernel's /proc is.
	DefaultProcRoot = "/proc"
)

// Schedulers are the IPVS schedulers of the kernel (net/netfilter/ipvs).
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos"}

// DefaultNodePortRange is kube-apiserver's default --service-node-port-range.
var DefaultNodePortRange = PortRange{Min: 30000, Max: 32767}

// PortRange is an inclusive range of ports.
type PortRange struct {
	// Min and Max are the first and last port of the range.
	Min, Max uint16
}

// Contains tells whether p is in the range.
func (r PortRange) Contains(p uint16) bool { return p >= r.Min && p <= r.Max }

// Config configures a Backend.
type Config struct {
	// Family is the IP family the backend programs.
	Family proxy.Family
	// Scheduler is the IPVS scheduler of every virtual service
	// (KubeProxyConfiguration ipvs.scheduler); "" is DefaultScheduler.
	Scheduler string
	// MasqueradeBit is the packet-mark bit that asks for masquerade (0-31;
	// iptables.DefaultMasqueradeBit is kube-proxy's 0x4000).
	MasqueradeBit int
	// GracePeriod is the longest a removed TCP or SCTP destination drains
	// at weight 0 before it is deleted with connections left; 0 is
	// DefaultGracePeriod.
	GracePeriod time.Duration
	// CheckInterval is how often Run checks draining destinations; 0 is
	// DefaultCheckInterval.
	CheckInterval time.Duration
	// NodePortRange is the apiserver's --service-node-port-range: a
	// virtual service on a node address is berth's only when its port is
	// in it (see the package documentation). Zero is DefaultNodePortRange.
	NodePortRange PortRange
	// ExcludeCIDRs protect other programs' virtual services
	// (KubeProxyConfiguration ipvs.excludeCIDRs): a virtual service on an
	// address in them is never berth's to delete, whatever else holds. One
	// the State asks for is still programmed.
	ExcludeCIDRs []netip.Prefix
	// StrictARP sets arp_ignore=1 and arp_announce=2 on all interfaces
	// (KubeProxyConfiguration ipvs.strictARP), so that the node does not
	// answer ARP for the addresses on the dummy interface.
	StrictARP bool
	// Timeouts are the IPVS session timeouts set once, at the first Sync
	// (zero ones are left as the kernel has them).
	Timeouts Timeouts
	// Handle programs IPVS; nil opens NewHandle on the first Sync.
	Handle Handle
	// Links handles the dummy interface and lists the node's addresses;
	// nil opens NewLinks on the first Sync.
	Links Links
	// Exec runs the iptables binaries; nil is xtables.OSExec.
	Exec xtables.Exec
	// Hooks checks and inserts the jumps from the built-in chains; nil
	// uses github.com/coreos/go-iptables on the detected binary.
	Hooks xtables.Hooks
	// Clock times syncs and graceful termination; nil is the real clock.
	Clock clock.WithTicker
	// ProcRoot is where /proc is (kernel parameters under sys/, the IPVS
	// table under net/ip_vs); "" is DefaultProcRoot. Tests point it at a
	// directory of their own.
	ProcRoot string
}

// Validate reports what is wrong with the configuration.
func (c *Config) Validate() error {
	if c.Family != proxy.IPv4 && c.Family != proxy.IPv6 {
		return fmt.Errorf("unknown IP family %d", c.Family)
	}
	if c.Scheduler != "" && !slices.Contains(Schedulers, c.Scheduler) {
		return fmt.Errorf("unknown IPVS scheduler %q: want one of %v", c.Scheduler, Schedulers)
	}
	if c.MasqueradeBit < 0 || c.MasqueradeBit > 31 {
		return fmt.Errorf("masquerade bit %d is not in 0-31", c.MasqueradeBit)
	}
	if c.GracePeriod < 0 || c.CheckInterval < 0 {
		return fmt.Errorf("negative grace period %s or check interval %s", c.GracePeriod, c.CheckInterval)
	}
	if c.NodePortRange != (PortRange{}) && (c.NodePortRange.Min == 0 || c.NodePortRange.Min > c.NodePortRange.Max) {
		return fmt.Errorf("bad node port range %d-%d", c.NodePortRange.Min, c.NodePortRange.Max)
	}
	for _, p := range c.ExcludeCIDRs {
		if !p.IsValid() {
			return fmt.Errorf("invalid exclude CIDR %v", p)
		}
	}
	return nil
}

// withDefaults returns the configuration with its zero fields defaulted
// (Handle, Links, Hooks stay nil: the first Sync opens them).
func (c Config) withDefaults() Config {
	if c.Scheduler == "" {
		c.Scheduler = DefaultScheduler
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = DefaultGracePeriod
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.NodePortRange == (PortRange{}) {
		c.NodePortRange = DefaultNodePortRange
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.ProcRoot == "" {
		c.ProcRoot = DefaultProcRoot
	}
	return c
}
