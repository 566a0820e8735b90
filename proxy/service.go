package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultAffinityTimeout is the ClientIP session-affinity timeout when the
// service sets none (the API's default, 3 hours).
const DefaultAffinityTimeout = 10800 * time.Second

// maxAffinityTimeoutSeconds is the largest timeout the API allows (1 day).
const maxAffinityTimeoutSeconds = 86400

// serviceInfo is what Compute needs of a Service, parsed and validated, per
// family.
type serviceInfo struct {
	name         types.NamespacedName
	clusterIPs   map[Family]netip.Addr
	externalIPs  map[Family][]netip.Addr
	lbIPs        map[Family][]netip.Addr
	sourceRanges map[Family][]netip.Prefix
	affinity     time.Duration
	// externalLocal is externalTrafficPolicy Local on an externally
	// accessible service; internalLocal is internalTrafficPolicy Local.
	externalLocal, internalLocal bool
	healthCheckNodePort          uint16
}

// parseService validates the service-wide fields. It returns nil and the
// Problems when the service cannot be programmed at all.
func parseService(svc *v1.Service, families []Family) (*serviceInfo, []Problem) {
	name := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	bad := func(reason, format string, args ...any) (*serviceInfo, []Problem) {
		return nil, []Problem{{Service: name, Reason: reason, Message: fmt.Sprintf(format, args...)}}
	}
	info := &serviceInfo{
		name:         name,
		clusterIPs:   map[Family]netip.Addr{},
		externalIPs:  map[Family][]netip.Addr{},
		lbIPs:        map[Family][]netip.Addr{},
		sourceRanges: map[Family][]netip.Prefix{},
	}
	if reason, msg := info.parseAddresses(svc, families); reason != "" {
		return bad(reason, "%s", msg)
	}
	if problem := info.parseSourceRanges(svc.Spec.LoadBalancerSourceRanges); problem != "" {
		return bad(ReasonInvalidIP, "%s", problem)
	}
	for f := range info.externalIPs {
		info.externalIPs[f] = sortedAddrs(info.externalIPs[f])
	}
	for f := range info.lbIPs {
		info.lbIPs[f] = sortedAddrs(info.lbIPs[f])
	}
	affinity, problem := affinityTimeout(svc)
	if problem != "" {
		return bad(ReasonInvalidSessionAffinity, "%s", problem)
	}
	info.affinity = affinity
	info.internalLocal = svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal
	info.externalLocal = externallyAccessible(svc) && svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
	if info.externalLocal && svc.Spec.Type == v1.ServiceTypeLoadBalancer {
		hc := svc.Spec.HealthCheckNodePort
		if hc < 0 || hc > 65535 {
			return bad(ReasonInvalidPort, "health-check node port %d out of range", hc)
		}
		info.healthCheckNodePort = uint16(hc)
	}
	return info, nil
}

// parseAddresses parses the cluster, external and load-balancer IPs per
// family. It returns a Problem's reason and message when one is invalid or
// no cluster IP is of a family this node programs.
func (info *serviceInfo) parseAddresses(svc *v1.Service, families []Family) (reason, message string) {
	clusterIPs := svc.Spec.ClusterIPs
	if len(clusterIPs) == 0 {
		clusterIPs = []string{svc.Spec.ClusterIP}
	}
	var found []string
	for _, s := range clusterIPs {
		ip, err := parseIP(s)
		if err != nil {
			return ReasonInvalidIP, fmt.Sprintf("cluster IP %q: %v", s, err)
		}
		f := Of(ip)
		if _, dup := info.clusterIPs[f]; dup {
			return ReasonInvalidIP, fmt.Sprintf("two cluster IPs of family IPv%d", f)
		}
		info.clusterIPs[f] = ip
		found = append(found, s)
	}
	for f := range info.clusterIPs {
		if !slices.Contains(families, f) {
			delete(info.clusterIPs, f)
		}
	}
	if len(info.clusterIPs) == 0 {
		return ReasonUnsupportedFamily, fmt.Sprintf("cluster IPs %v: none of a family this node programs", found)
	}
	for _, s := range svc.Spec.ExternalIPs {
		ip, err := parseIP(s)
		if err != nil {
			return ReasonInvalidIP, fmt.Sprintf("external IP %q: %v", s, err)
		}
		info.externalIPs[Of(ip)] = append(info.externalIPs[Of(ip)], ip)
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		// Proxy-mode load balancers deliver to node ports themselves: no
		// VIP rules for them, as in kube-proxy.
		if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode != v1.LoadBalancerIPModeVIP) {
			continue
		}
		ip, err := parseIP(ing.IP)
		if err != nil {
			return ReasonInvalidIP, fmt.Sprintf("load-balancer ingress IP %q: %v", ing.IP, err)
		}
		info.lbIPs[Of(ip)] = append(info.lbIPs[Of(ip)], ip)
	}
	return "", ""
}

// parseSourceRanges parses loadBalancerSourceRanges (whose validation
// lets whitespace through, as kube-proxy notes). A zero-length range of a
// family means everyone, as does none. It returns a message on error.
func (info *serviceInfo) parseSourceRanges(ranges []string) string {
	everyone := map[Family]bool{}
	for _, s := range ranges {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil || p.Addr().Zone() != "" {
			return fmt.Sprintf("load-balancer source range %q does not parse", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
		if !p.IsValid() {
			return fmt.Sprintf("load-balancer source range %q is not a valid CIDR", s)
		}
		f := Of(p.Addr())
		if p.Bits() == 0 {
			everyone[f] = true
		}
		info.sourceRanges[f] = append(info.sourceRanges[f], p)
	}
	for f := range info.sourceRanges {
		if everyone[f] {
			delete(info.sourceRanges, f)
			continue
		}
		slices.SortFunc(info.sourceRanges[f], comparePrefixes)
		info.sourceRanges[f] = slices.Compact(info.sourceRanges[f])
	}
	return ""
}

// parseIP parses an IP of a service: no zone, IPv4-mapped IPv6 taken as
// IPv4.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("not an IP address")
	}
	if ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("zones are not allowed")
	}
	if ip.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("unspecified address")
	}
	return ip.Unmap(), nil
}

func sortedAddrs(ips []netip.Addr) []netip.Addr {
	slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(ips)
}

// affinityTimeout returns the ClientIP affinity timeout (0: no affinity)
// or a message when the settings are invalid.
func affinityTimeout(svc *v1.Service) (time.Duration, string) {
	switch svc.Spec.SessionAffinity {
	case "", v1.ServiceAffinityNone:
		return 0, ""
	case v1.ServiceAffinityClientIP:
	default:
		return 0, fmt.Sprintf("unknown session affinity %q", svc.Spec.SessionAffinity)
	}
	cfg := svc.Spec.SessionAffinityConfig
	if cfg == nil || cfg.ClientIP == nil || cfg.ClientIP.TimeoutSeconds == nil {
		return DefaultAffinityTimeout, ""
	}
	secs := *cfg.ClientIP.TimeoutSeconds
	if secs < 1 || secs > maxAffinityTimeoutSeconds {
		return 0, fmt.Sprintf("session affinity timeout %ds out of range 1-%d", secs, maxAffinityTimeoutSeconds)
	}
	return time.Duration(secs) * time.Second, ""
}

// externallyAccessible tells whether external traffic policy applies to
// the service at all: a node port, a load balancer, or external IPs.
func externallyAccessible(svc *v1.Service) bool {
	switch svc.Spec.Type {
	case v1.ServiceTypeLoadBalancer, v1.ServiceTypeNodePort:
		return true
	case v1.ServiceTypeClusterIP, "":
		return len(svc.Spec.ExternalIPs) > 0
	}
	return false
}
