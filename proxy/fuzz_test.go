package proxy

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// fuzzReader turns fuzz bytes into choices. Values come mostly from small
// pools, so that names, addresses and ports collide as often as they do
// in trouble, and sometimes from the bytes themselves.
type fuzzReader struct{ data []byte }

func (r *fuzzReader) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

func (r *fuzzReader) n(limit int) int { return int(r.byte()) % limit }

func (r *fuzzReader) pick(opts ...string) string {
	if r.n(8) == 0 {
		return r.raw()
	}
	return opts[r.n(len(opts))]
}

// raw returns a short string of the input's bytes.
func (r *fuzzReader) raw() string {
	n := r.n(12)
	if n > len(r.data) {
		n = len(r.data)
	}
	s := string(r.data[:n])
	r.data = r.data[n:]
	return s
}

func (r *fuzzReader) int32() int32 {
	switch r.n(6) {
	case 0:
		return 0
	case 1:
		return -1
	case 2:
		return 65536
	default:
		return int32(r.byte())<<8 | int32(r.byte())
	}
}

func (r *fuzzReader) boolPtr() *bool {
	switch r.n(3) {
	case 0:
		return nil
	case 1:
		return ptr.To(false)
	}
	return ptr.To(true)
}

var (
	fuzzIPs    = []string{"10.96.0.1", "10.96.0.2", "fd00::1", "fd00::2", "None", "", "10.0.0.1", "fd00::a", "::ffff:10.0.0.1", "0.0.0.0", "fe80::1%eth0", "300.1.1.1"}
	fuzzNames  = []string{"a", "b", "c", ""}
	fuzzProtos = []string{"TCP", "UDP", "SCTP", "", "ICMP"}
	fuzzNodes  = []string{thisNode, "node-b", ""}
	fuzzCIDRs  = []string{"10.0.0.0/8", "0.0.0.0/0", "fd00::/8", "::/0", "1.2.3.4/33", "bogus"}
)

func (r *fuzzReader) service() *v1.Service {
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: r.pick("ns", "other"), Name: r.pick(fuzzNames...)}}
	svc.CreationTimestamp = metav1.Unix(int64(r.n(4)), 0)
	svc.Spec.Type = v1.ServiceType(r.pick("ClusterIP", "NodePort", "LoadBalancer", "ExternalName", ""))
	for range r.n(3) {
		svc.Spec.ClusterIPs = append(svc.Spec.ClusterIPs, r.pick(fuzzIPs...))
	}
	if len(svc.Spec.ClusterIPs) > 0 {
		svc.Spec.ClusterIP = svc.Spec.ClusterIPs[0]
	}
	for range r.n(4) {
		svc.Spec.Ports = append(svc.Spec.Ports, v1.ServicePort{
			Name: r.pick(fuzzNames...), Protocol: v1.Protocol(r.pick(fuzzProtos...)),
			Port: r.int32(), NodePort: r.int32(),
		})
	}
	for range r.n(3) {
		svc.Spec.ExternalIPs = append(svc.Spec.ExternalIPs, r.pick(fuzzIPs...))
	}
	for range r.n(3) {
		ing := v1.LoadBalancerIngress{IP: r.pick(fuzzIPs...)}
		if r.n(3) == 0 {
			ing.IPMode = ptr.To(v1.LoadBalancerIPMode(r.pick("VIP", "Proxy")))
		}
		svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, ing)
	}
	for range r.n(3) {
		svc.Spec.LoadBalancerSourceRanges = append(svc.Spec.LoadBalancerSourceRanges, r.pick(fuzzCIDRs...))
	}
	svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicy(r.pick("Cluster", "Local"))
	if r.n(2) == 0 {
		svc.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicy(r.pick("Cluster", "Local")))
	}
	svc.Spec.HealthCheckNodePort = r.int32()
	svc.Spec.SessionAffinity = v1.ServiceAffinity(r.pick("None", "ClientIP", ""))
	if r.n(2) == 0 {
		svc.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(r.int32())}}
	}
	if r.n(6) == 0 {
		svc.Labels = map[string]string{r.pick(LabelServiceProxyName, LabelHeadless, "x"): ""}
	}
	return svc
}

func (r *fuzzReader) slice() *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: r.pick("ns", "other"), Name: r.pick("s1", "s2", "s3")},
		AddressType: discovery.AddressType(r.pick("IPv4", "IPv6", "FQDN")),
	}
	if r.n(5) != 0 {
		s.Labels = map[string]string{discovery.LabelServiceName: r.pick(fuzzNames...)}
	}
	for range r.n(3) {
		p := discovery.EndpointPort{}
		if r.n(4) != 0 {
			p.Name = ptr.To(r.pick(fuzzNames...))
		}
		if r.n(4) != 0 {
			p.Protocol = ptr.To(v1.Protocol(r.pick(fuzzProtos...)))
		}
		if r.n(4) != 0 {
			p.Port = ptr.To(r.int32())
		}
		s.Ports = append(s.Ports, p)
	}
	for range r.n(5) {
		e := discovery.Endpoint{Conditions: discovery.EndpointConditions{Ready: r.boolPtr(), Serving: r.boolPtr(), Terminating: r.boolPtr()}}
		for range r.n(3) {
			e.Addresses = append(e.Addresses, r.pick(fuzzIPs...))
		}
		if r.n(3) != 0 {
			e.NodeName = ptr.To(r.pick(fuzzNodes...))
		}
		if r.n(3) == 0 {
			e.Hints = &discovery.EndpointHints{ForZones: []discovery.ForZone{{Name: r.pick("z1", "z2")}}, ForNodes: []discovery.ForNode{{Name: r.pick(fuzzNodes...)}}}
		}
		s.Endpoints = append(s.Endpoints, e)
	}
	return s
}

func (r *fuzzReader) options() Options {
	opts := Options{NodeName: r.pick(fuzzNodes...), MasqueradeAll: r.n(2) == 0, NodePortPrimary: r.n(2) == 0}
	switch r.n(3) {
	case 0:
		opts.Families = []Family{IPv4}
	case 1:
		opts.Families = []Family{IPv6}
	default:
		opts.Families = []Family{IPv4, IPv6}
	}
	for range r.n(3) {
		if ip, err := netip.ParseAddr(r.pick(fuzzIPs...)); err == nil {
			opts.NodeIPs = append(opts.NodeIPs, ip)
		}
		if p, err := netip.ParsePrefix(r.pick(fuzzCIDRs...)); err == nil {
			opts.ClusterCIDRs = append(opts.ClusterCIDRs, p)
			opts.NodePortAddresses = append(opts.NodePortAddresses, p)
		}
	}
	return opts
}

func FuzzCompute(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x03\x01\x02\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"))
	f.Add([]byte("service-with-many-bytes-to-chew-on-0123456789abcdefghijklmnopqrstuvwxyz"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{data: data}
		var services []*v1.Service
		for range r.n(6) {
			services = append(services, r.service())
		}
		var slices []*discovery.EndpointSlice
		for range r.n(6) {
			slices = append(slices, r.slice())
		}
		var n *v1.Node
		if r.n(2) == 0 {
			n = node(thisNode, r.pick("z1", "z2", ""))
		}
		opts := r.options()
		snap := NewSnapshot(services, slices, n)
		states, problems := Compute(snap, opts)
		again, problemsAgain := Compute(snap, opts)
		if diff := cmp.Diff(states, again, cmpOpts...); diff != "" {
			t.Fatalf("Compute is not deterministic:\n%s", diff)
		}
		if diff := cmp.Diff(problems, problemsAgain, cmpOpts...); diff != "" {
			t.Fatalf("Compute problems are not deterministic:\n%s", diff)
		}
		for f, st := range states {
			if err := checkState(f, st); err != nil {
				t.Fatalf("IPv%d: %v", f, err)
			}
		}
	})
}

// checkState checks the invariants backends rely on.
func checkState(f Family, st *State) error {
	if st.Family != f {
		return fmt.Errorf("state of family %d under %d", st.Family, f)
	}
	seen := map[frontend]string{}
	for i, sp := range st.Services {
		if i > 0 && st.Services[i-1].Name.Key() >= sp.Name.Key() {
			return fmt.Errorf("services not sorted and unique at %s", sp.Name.Key())
		}
		if sp.Port == 0 || len(sp.ClusterIPs) != 1 || !knownProtocol(v1.Protocol(sp.Protocol)) {
			return fmt.Errorf("%s: bad port, cluster IPs or protocol: %+v", sp.Name, sp)
		}
		if sp.ExternalLocal && !sp.HasExternal() || sp.HealthCheckNodePort != 0 && !sp.ExternalLocal {
			return fmt.Errorf("%s: inconsistent external policy: %+v", sp.Name, sp)
		}
		for _, ip := range append(append(append([]netip.Addr{}, sp.ClusterIPs...), sp.ExternalIPs...), sp.LoadBalancerIPs...) {
			fe := frontend{ip: ip, port: sp.Port, protocol: sp.Protocol}
			if !ip.IsValid() || Of(ip) != f || ip.Is4In6() {
				return fmt.Errorf("%s: address %v of the wrong family", sp.Name, ip)
			}
			if other, dup := seen[fe]; dup {
				return fmt.Errorf("%s: %v used by %s too", sp.Name, ip, other)
			}
			seen[fe] = sp.Name.String()
		}
		for _, e := range append(append([]Endpoint{}, sp.ClusterEndpoints...), sp.ExternalEndpoints...) {
			if !e.IP.IsValid() || Of(e.IP) != f || e.Port == 0 {
				return fmt.Errorf("%s: bad endpoint %v", sp.Name, e)
			}
		}
	}
	return nil
}
