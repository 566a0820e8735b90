package proxy

import (
	"net/netip"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Builders of API objects for the tests. Every service lives in namespace
// "ns"; the node under test is "node-a".

const thisNode = "node-a"

// cmpNet compares netip values by value.
var cmpNet = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

var cmpOpts = []cmp.Option{cmpNet, cmpopts.EquateEmpty()}

// service returns a ClusterIP service with cluster IP ip and one TCP port
// "http" 80, changed by mods.
func service(name, ip string, mods ...func(*v1.Service)) *v1.Service {
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: "1",
			CreationTimestamp: metav1.NewTime(time.Unix(1000, 0))},
		Spec: v1.ServiceSpec{
			Type:       v1.ServiceTypeClusterIP,
			ClusterIP:  ip,
			ClusterIPs: []string{ip},
			Ports:      []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
		},
	}
	for _, m := range mods {
		m(svc)
	}
	return svc
}

func withPorts(ports ...v1.ServicePort) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.Ports = ports }
}

func withType(t v1.ServiceType) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.Type = t }
}

func withClusterIPs(ips ...string) func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = ips[0], ips }
}

func withExternalLocal(hcPort int32) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = hcPort
	}
}

func withInternalLocal() func(*v1.Service) {
	return func(s *v1.Service) { s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal) }
}

func withLabel(k, v string) func(*v1.Service) {
	return func(s *v1.Service) { s.Labels = map[string]string{k: v} }
}

func withCreated(sec int64) func(*v1.Service) {
	return func(s *v1.Service) { s.CreationTimestamp = metav1.NewTime(time.Unix(sec, 0)) }
}

func withLB(ips ...string) func(*v1.Service) {
	return func(s *v1.Service) {
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
		}
	}
}

func port(name string, proto v1.Protocol, num, nodePort int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Protocol: proto, Port: num, NodePort: nodePort}
}

// slice returns an EndpointSlice of service svc.
func slice(svc, name string, t discovery.AddressType, ports []discovery.EndpointPort, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	return &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: "1",
			Labels: map[string]string{discovery.LabelServiceName: svc}},
		AddressType: t,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func sport(name string, num int32) discovery.EndpointPort {
	return discovery.EndpointPort{Name: ptr.To(name), Port: ptr.To(num), Protocol: ptr.To(v1.ProtocolTCP)}
}

func sportProto(name string, proto v1.Protocol, num int32) discovery.EndpointPort {
	return discovery.EndpointPort{Name: ptr.To(name), Port: ptr.To(num), Protocol: ptr.To(proto)}
}

// Endpoint conditions.
const (
	ready       = "ready"
	notReady    = "not-ready"
	terminating = "terminating" // serving and terminating
	gone        = "gone"        // terminating, not serving
)

func sep(ip, node, cond string) discovery.Endpoint {
	e := discovery.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(node)}
	switch cond {
	case notReady:
		e.Conditions = discovery.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(false)}
	case terminating:
		e.Conditions = discovery.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}
	case gone:
		e.Conditions = discovery.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(true)}
	default:
		e.Conditions = discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}
	}
	return e
}

func withZoneHints(e discovery.Endpoint, zones ...string) discovery.Endpoint {
	e.Hints = &discovery.EndpointHints{}
	for _, z := range zones {
		e.Hints.ForZones = append(e.Hints.ForZones, discovery.ForZone{Name: z})
	}
	return e
}

// Expected values.

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, addr(s))
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// ep is a ready endpoint; local tells whether it is on thisNode.
func ep(ip string, p uint16, local bool) Endpoint {
	return Endpoint{IP: addr(ip), Port: p, Local: local, Ready: true, Serving: true}
}

func termEP(ip string, p uint16, local bool) Endpoint {
	return Endpoint{IP: addr(ip), Port: p, Local: local, Serving: true, Terminating: true}
}

func spn(svc, port string, proto Protocol) ServicePortName {
	return ServicePortName{Namespace: "ns", Name: svc, Port: port, Protocol: proto}
}

// tcp80 is the ServicePort of service() in IPv4 with the given endpoints.
func tcp80(svc, ip string, eps ...Endpoint) ServicePort {
	return ServicePort{
		Name:             spn(svc, "http", TCP),
		Protocol:         TCP,
		ClusterIPs:       addrs(ip),
		Port:             80,
		ClusterEndpoints: eps,
	}
}

func node(name, zone string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"}}
	if zone != "" {
		n.Labels = map[string]string{v1.LabelTopologyZone: zone}
	}
	return n
}
