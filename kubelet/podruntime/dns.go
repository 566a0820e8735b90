package podruntime

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Limits of resolv.conf that the kubelet enforces as well.
const (
	maxNameservers   = 3
	maxSearchDomains = 32
	maxSearchLength  = 2048
)

// hostDNS is the node's resolver configuration (the kubelet's resolvConf).
type hostDNS struct {
	Servers  []string
	Searches []string
	Options  []string
}

// parseResolvConf reads nameserver, search, domain and options lines.
func parseResolvConf(r io.Reader) (hostDNS, error) {
	var out hostDNS
	var domain string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			out.Servers = append(out.Servers, f[1])
		case "domain":
			domain = f[1]
		case "search":
			out.Searches = nil
			for _, s := range f[1:] {
				if s = strings.TrimSuffix(s, "."); s != "" {
					out.Searches = append(out.Searches, s)
				}
			}
		case "options":
			out.Options = append(out.Options, f[1:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return hostDNS{}, fmt.Errorf("read resolv.conf: %w", err)
	}
	if len(out.Searches) == 0 && domain != "" {
		out.Searches = []string{strings.TrimSuffix(domain, ".")}
	}
	return out, nil
}

// clusterDNS is the cluster's DNS as the kubelet is configured for it.
type clusterDNS struct {
	Servers []string
	Domain  string
}

// dnsConfig builds the pod's resolver configuration from its dnsPolicy and
// dnsConfig. The second result is a warning for the pod's events (empty when
// all is well).
func dnsConfig(pod *v1.Pod, cluster clusterDNS, host hostDNS) (*runtimeapi.DNSConfig, string) {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = v1.DNSClusterFirst
	}
	var warning string
	useCluster := policy == v1.DNSClusterFirstWithHostNet ||
		(policy == v1.DNSClusterFirst && !pod.Spec.HostNetwork)
	if useCluster && len(cluster.Servers) == 0 {
		warning = fmt.Sprintf("kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.", policy, v1.DNSDefault)
		useCluster = false
	}
	out := &runtimeapi.DNSConfig{}
	switch {
	case policy == v1.DNSNone:
	case useCluster:
		out.Servers = slices.Clone(cluster.Servers)
		if d := cluster.Domain; d != "" {
			out.Searches = []string{pod.Namespace + ".svc." + d, "svc." + d, d}
		}
		out.Searches = append(out.Searches, host.Searches...)
		out.Options = []string{"ndots:5"}
	default:
		out.Servers = slices.Clone(host.Servers)
		out.Searches = slices.Clone(host.Searches)
		out.Options = slices.Clone(host.Options)
	}
	if pc := pod.Spec.DNSConfig; pc != nil {
		out.Servers = appendUnique(out.Servers, pc.Nameservers...)
		out.Searches = appendUnique(out.Searches, pc.Searches...)
		out.Options = mergeOptions(out.Options, pc.Options)
	}
	if w := trimDNS(out); w != "" && warning == "" {
		warning = w
	}
	return out, warning
}

func appendUnique(list []string, more ...string) []string {
	for _, s := range more {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

// mergeOptions adds the pod's options to base; a pod option replaces the base
// option of the same name.
func mergeOptions(base []string, pod []v1.PodDNSConfigOption) []string {
	index := map[string]int{}
	var out []string
	set := func(name, full string) {
		if i, ok := index[name]; ok {
			out[i] = full
			return
		}
		index[name] = len(out)
		out = append(out, full)
	}
	for _, o := range base {
		name, _, _ := strings.Cut(o, ":")
		set(name, o)
	}
	for _, o := range pod {
		full := o.Name
		if o.Value != nil {
			full += ":" + *o.Value
		}
		set(o.Name, full)
	}
	return out
}

// trimDNS drops what resolvers would not take: nameservers past the third,
// search domains past the limits. It returns a warning when it dropped any.
func trimDNS(c *runtimeapi.DNSConfig) string {
	var dropped []string
	if len(c.Servers) > maxNameservers {
		dropped = append(dropped, fmt.Sprintf("nameservers %v", c.Servers[maxNameservers:]))
		c.Servers = c.Servers[:maxNameservers]
	}
	keep, length := 0, 0
	for _, s := range c.Searches {
		if keep == maxSearchDomains || length+len(s)+1 > maxSearchLength {
			break
		}
		keep++
		length += len(s) + 1
	}
	if keep < len(c.Searches) {
		dropped = append(dropped, fmt.Sprintf("search domains %v", c.Searches[keep:]))
		c.Searches = c.Searches[:keep]
	}
	if len(dropped) == 0 {
		return ""
	}
	return "DNS configuration exceeds limits, some entries were omitted: " + strings.Join(dropped, ", ")
}
