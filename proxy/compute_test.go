package proxy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

type computeCase struct {
	name     string
	services []*v1.Service
	slices   []*discovery.EndpointSlice
	node     *v1.Node
	// opts defaults to this node, IPv4 only.
	opts *Options
	// want is the IPv4 State's services (when wantStates is nil).
	want         []ServicePort
	wantStates   map[Family]*State
	wantProblems []Problem
}

func (tc computeCase) run(t *testing.T) {
	t.Helper()
	opts := Options{NodeName: thisNode, Families: []Family{IPv4}}
	if tc.opts != nil {
		opts = *tc.opts
	}
	got, problems := Compute(NewSnapshot(tc.services, tc.slices, tc.node), opts)
	want := tc.wantStates
	if want == nil {
		want = map[Family]*State{IPv4: {Family: IPv4, Services: tc.want}}
	}
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("States (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(tc.wantProblems, problems, cmpOpts...); diff != "" {
		t.Errorf("Problems (-want +got):\n%s", diff)
	}
}

func TestComputeEndpointSelection(t *testing.T) {
	http := []discovery.EndpointPort{sport("http", 8080)}
	tests := []computeCase{{
		name:     "ready endpoints only, sorted by IP then port",
		services: []*v1.Service{service("web", "10.96.0.10")},
		slices: []*discovery.EndpointSlice{slice("web", "web-1", discovery.AddressTypeIPv4, http,
			sep("10.0.0.9", "node-b", ready), sep("10.0.0.10", thisNode, ready), sep("10.0.0.2", "node-b", notReady))},
		want: []ServicePort{tcp80("web", "10.96.0.10", ep("10.0.0.9", 8080, false), ep("10.0.0.10", 8080, true))},
	}, {
		name:     "no endpoints: empty (reject)",
		services: []*v1.Service{service("web", "10.96.0.10")},
		want:     []ServicePort{tcp80("web", "10.96.0.10")},
	}, {
		name:     "none ready: serving terminating ones, not the non-serving",
		services: []*v1.Service{service("web", "10.96.0.10")},
		slices: []*discovery.EndpointSlice{slice("web", "web-1", discovery.AddressTypeIPv4, http,
			sep("10.0.0.1", "node-b", terminating), sep("10.0.0.2", "node-b", gone), sep("10.0.0.3", "node-b", notReady))},
		want: []ServicePort{tcp80("web", "10.96.0.10", termEP("10.0.0.1", 8080, false))},
	}, {
		name:     "named target port resolves per endpoint across slices",
		services: []*v1.Service{service("web", "10.96.0.10")},
		slices: []*discovery.EndpointSlice{
			slice("web", "web-1", discovery.AddressTypeIPv4, []discovery.EndpointPort{sport("http", 8080)}, sep("10.0.0.1", "node-b", ready)),
			slice("web", "web-2", discovery.AddressTypeIPv4, []discovery.EndpointPort{sport("http", 9090)}, sep("10.0.0.1", "node-b", ready), sep("10.0.0.2", "node-b", ready)),
		},
		want: []ServicePort{tcp80("web", "10.96.0.10", ep("10.0.0.1", 8080, false), ep("10.0.0.1", 9090, false), ep("10.0.0.2", 9090, false))},
	}, {
		name: "slice ports matched by service port name and protocol",
		services: []*v1.Service{service("dns", "10.96.0.10", withPorts(
			port("dns", v1.ProtocolUDP, 53, 0), port("dns-tcp", v1.ProtocolTCP, 53, 0), port("metrics", v1.ProtocolTCP, 9153, 0)))},
		slices: []*discovery.EndpointSlice{slice("dns", "dns-1", discovery.AddressTypeIPv4,
			[]discovery.EndpointPort{sportProto("dns", v1.ProtocolUDP, 5353), sportProto("dns-tcp", v1.ProtocolTCP, 5354), sportProto("metrics", v1.ProtocolUDP, 1)},
			sep("10.0.0.1", "node-b", ready))},
		want: []ServicePort{
			// Sorted by Key: "dns-tcp/" before "dns/".
			{Name: spn("dns", "dns-tcp", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.10"), Port: 53, ClusterEndpoints: []Endpoint{ep("10.0.0.1", 5354, false)}},
			{Name: spn("dns", "dns", UDP), Protocol: UDP, ClusterIPs: addrs("10.96.0.10"), Port: 53, ClusterEndpoints: []Endpoint{ep("10.0.0.1", 5353, false)}},
			{Name: spn("dns", "metrics", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.10"), Port: 9153},
		},
	}, {
		name:     "same address in two slices: the non-terminating one wins",
		services: []*v1.Service{service("web", "10.96.0.10")},
		slices: []*discovery.EndpointSlice{
			slice("web", "web-a", discovery.AddressTypeIPv4, http, sep("10.0.0.1", "node-b", ready)),
			slice("web", "web-b", discovery.AddressTypeIPv4, http, sep("10.0.0.1", "node-b", terminating)),
		},
		want: []ServicePort{tcp80("web", "10.96.0.10", ep("10.0.0.1", 8080, false))},
	}, {
		name:     "FQDN slices ignored; wrong-family addresses skipped with a problem",
		services: []*v1.Service{service("web", "10.96.0.10")},
		slices: []*discovery.EndpointSlice{
			slice("web", "web-fqdn", discovery.AddressTypeFQDN, http, discovery.Endpoint{Addresses: []string{"example.com"}}),
			slice("web", "web-1", discovery.AddressTypeIPv4, http, sep("fd00::1", "node-b", ready), sep("10.0.0.1", "node-b", ready)),
		},
		want: []ServicePort{tcp80("web", "10.96.0.10", ep("10.0.0.1", 8080, false))},
		wantProblems: []Problem{{Service: types.NamespacedName{Namespace: "ns", Name: "web"}, Reason: ReasonInvalidEndpoint,
			Message: `EndpointSlice web-1 of type IPv4 has invalid address "fd00::1"`}},
	}, {
		name:     "slice port without a number is skipped",
		services: []*v1.Service{service("web", "10.96.0.10")},
		slices: []*discovery.EndpointSlice{slice("web", "web-1", discovery.AddressTypeIPv4,
			[]discovery.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP)}}, sep("10.0.0.1", "node-b", ready))},
		want: []ServicePort{tcp80("web", "10.96.0.10")},
		wantProblems: []Problem{{Service: types.NamespacedName{Namespace: "ns", Name: "web"}, Reason: ReasonInvalidEndpoint,
			Message: `EndpointSlice web-1 port "http" has invalid number none`}},
	}, {
		name:     "internalTrafficPolicy Local: only local endpoints",
		services: []*v1.Service{service("web", "10.96.0.10", withInternalLocal())},
		slices: []*discovery.EndpointSlice{slice("web", "web-1", discovery.AddressTypeIPv4, http,
			sep("10.0.0.1", "node-b", ready), sep("10.0.0.2", thisNode, ready))},
		want: []ServicePort{tcp80("web", "10.96.0.10", ep("10.0.0.2", 8080, true))},
	}, {
		name:     "internalTrafficPolicy Local: local terminating when no local ready, even if remote ready",
		services: []*v1.Service{service("web", "10.96.0.10", withInternalLocal())},
		slices: []*discovery.EndpointSlice{slice("web", "web-1", discovery.AddressTypeIPv4, http,
			sep("10.0.0.1", "node-b", ready), sep("10.0.0.2", thisNode, terminating))},
		want: []ServicePort{tcp80("web", "10.96.0.10", termEP("10.0.0.2", 8080, true))},
	}, {
		name:     "zone hints narrow cluster endpoints when one is for this zone",
		node:     node(thisNode, "zone-a"),
		services: []*v1.Service{service("web", "10.96.0.10")},
		slices: []*discovery.EndpointSlice{slice("web", "web-1", discovery.AddressTypeIPv4, http,
			withZoneHints(sep("10.0.0.1", "node-b", ready), "zone-a"), withZoneHints(sep("10.0.0.2", "node-c", ready), "zone-b"))},
		want: []ServicePort{tcp80("web", "10.96.0.10", ep("10.0.0.1", 8080, false))},
	}, {
		name:     "zone hints ignored when an endpoint lacks one",
		node:     node(thisNode, "zone-a"),
		services: []*v1.Service{service("web", "10.96.0.10")},
		slices: []*discovery.EndpointSlice{slice("web", "web-1", discovery.AddressTypeIPv4, http,
			withZoneHints(sep("10.0.0.1", "node-b", ready), "zone-a"), sep("10.0.0.2", "node-c", ready))},
		want: []ServicePort{tcp80("web", "10.96.0.10", ep("10.0.0.1", 8080, false), ep("10.0.0.2", 8080, false))},
	}}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func TestComputeServiceTypes(t *testing.T) {
	http := []discovery.EndpointPort{sport("http", 8080)}
	twoEPs := []*discovery.EndpointSlice{slice("web", "web-1", discovery.AddressTypeIPv4, http,
		sep("10.0.0.1", "node-b", ready), sep("10.0.0.2", thisNode, ready))}
	all := []Endpoint{ep("10.0.0.1", 8080, false), ep("10.0.0.2", 8080, true)}
	local := []Endpoint{ep("10.0.0.2", 8080, true)}
	tests := []computeCase{{
		name:     "NodePort, Cluster policy: external endpoints are all",
		services: []*v1.Service{service("web", "10.96.0.10", withType(v1.ServiceTypeNodePort), withPorts(port("http", v1.ProtocolTCP, 80, 30080)))},
		slices:   twoEPs,
		want: []ServicePort{{Name: spn("web", "http", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.10"), Port: 80, NodePort: 30080,
			ClusterEndpoints: all, ExternalEndpoints: all}},
	}, {
		name: "NodePort, Local policy: local external endpoints, no health check port",
		services: []*v1.Service{service("web", "10.96.0.10", withType(v1.ServiceTypeNodePort),
			withPorts(port("http", v1.ProtocolTCP, 80, 30080)), withExternalLocal(0))},
		slices: twoEPs,
		want: []ServicePort{{Name: spn("web", "http", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.10"), Port: 80, NodePort: 30080,
			ClusterEndpoints: all, ExternalEndpoints: local, ExternalLocal: true}},
	}, {
		name: "LoadBalancer, Local policy: ingress IPs (VIP mode only), source ranges, health check port",
		services: []*v1.Service{service("web", "10.96.0.10", withType(v1.ServiceTypeLoadBalancer),
			withPorts(port("http", v1.ProtocolTCP, 80, 30080)), withExternalLocal(32000), withLB("203.0.113.7", "2001:db8::7"),
			func(s *v1.Service) {
				s.Spec.LoadBalancerSourceRanges = []string{" 192.0.2.0/24 ", "198.51.100.9/16", "2001:db8::/32"}
				s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress,
					v1.LoadBalancerIngress{IP: "203.0.113.8", IPMode: ptr.To(v1.LoadBalancerIPModeProxy)},
					v1.LoadBalancerIngress{Hostname: "lb.example.com"})
			})},
		slices: twoEPs,
		want: []ServicePort{{Name: spn("web", "http", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.10"), Port: 80, NodePort: 30080,
			LoadBalancerIPs: addrs("203.0.113.7"), SourceRanges: prefixes("192.0.2.0/24", "198.51.0.0/16"),
			ClusterEndpoints: all, ExternalEndpoints: local, ExternalLocal: true, HealthCheckNodePort: 32000}},
	}, {
		name: "zero-length source range means everyone",
		services: []*v1.Service{service("web", "10.96.0.10", withType(v1.ServiceTypeLoadBalancer), withLB("203.0.113.7"),
			func(s *v1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"192.0.2.0/24", "0.0.0.0/0"} })},
		want: []ServicePort{{Name: spn("web", "http", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.10"), Port: 80,
			LoadBalancerIPs: addrs("203.0.113.7")}},
	}, {
		name: "externalIPs on a ClusterIP service, Local policy applies",
		services: []*v1.Service{service("web", "10.96.0.10", withExternalLocal(0),
			func(s *v1.Service) {
				s.Spec.ExternalIPs = []string{"198.51.100.2", "198.51.100.1", "198.51.100.2", "2001:db8::1"}
			})},
		slices: twoEPs,
		want: []ServicePort{{Name: spn("web", "http", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.10"), Port: 80,
			ExternalIPs: addrs("198.51.100.1", "198.51.100.2"), ClusterEndpoints: all, ExternalEndpoints: local, ExternalLocal: true}},
	}, {
		name:     "eTP Local on a ClusterIP service without external IPs is moot",
		services: []*v1.Service{service("web", "10.96.0.10", withExternalLocal(0))},
		slices:   twoEPs,
		want:     []ServicePort{tcp80("web", "10.96.0.10", all...)},
	}, {
		name: "session affinity ClientIP: default and explicit timeouts",
		services: []*v1.Service{
			service("a", "10.96.0.1", func(s *v1.Service) { s.Spec.SessionAffinity = v1.ServiceAffinityClientIP }),
			service("b", "10.96.0.2", func(s *v1.Service) {
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}}
			}),
		},
		want: []ServicePort{
			{Name: spn("a", "http", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.1"), Port: 80, AffinityTimeout: 10800 * time.Second},
			{Name: spn("b", "http", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.2"), Port: 80, AffinityTimeout: time.Minute},
		},
	}, {
		name:     "SCTP is programmed",
		services: []*v1.Service{service("sctp", "10.96.0.1", withPorts(port("s", v1.ProtocolSCTP, 9999, 0)))},
		want:     []ServicePort{{Name: spn("sctp", "s", SCTP), Protocol: SCTP, ClusterIPs: addrs("10.96.0.1"), Port: 9999}},
	}, {
		name: "headless, ExternalName and labelled services get nothing",
		services: []*v1.Service{
			service("headless", "None"),
			service("extname", "", withType(v1.ServiceTypeExternalName), func(s *v1.Service) { s.Spec.ExternalName = "example.com" }),
			service("other-proxy", "10.96.0.1", withLabel(LabelServiceProxyName, "someone-else")),
			service("headless-label", "10.96.0.2", withLabel(LabelHeadless, "")),
			service("kept", "10.96.0.3"),
		},
		want: []ServicePort{tcp80("kept", "10.96.0.3")},
	}}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func TestComputeFamiliesAndGlobals(t *testing.T) {
	dual := service("web", "10.96.0.10", withClusterIPs("10.96.0.10", "fd00:96::10"),
		func(s *v1.Service) { s.Spec.ExternalIPs = []string{"198.51.100.1", "2001:db8::1"} })
	slices := []*discovery.EndpointSlice{
		slice("web", "web-v4", discovery.AddressTypeIPv4, []discovery.EndpointPort{sport("http", 8080)}, sep("10.0.0.1", thisNode, ready)),
		slice("web", "web-v6", discovery.AddressTypeIPv6, []discovery.EndpointPort{sport("http", 8080)}, sep("fd00::1", thisNode, ready)),
	}
	v4 := ServicePort{Name: spn("web", "http", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.10"), Port: 80,
		ExternalIPs: addrs("198.51.100.1"), ClusterEndpoints: []Endpoint{ep("10.0.0.1", 8080, true)}, ExternalEndpoints: []Endpoint{ep("10.0.0.1", 8080, true)}}
	v6 := ServicePort{Name: spn("web", "http", TCP), Protocol: TCP, ClusterIPs: addrs("fd00:96::10"), Port: 80,
		ExternalIPs: addrs("2001:db8::1"), ClusterEndpoints: []Endpoint{ep("fd00::1", 8080, true)}, ExternalEndpoints: []Endpoint{ep("fd00::1", 8080, true)}}
	tests := []computeCase{{
		name:     "dual-stack service on a dual-stack node: one State per family with its globals",
		services: []*v1.Service{dual},
		slices:   slices,
		opts: &Options{NodeName: thisNode, Families: []Family{IPv6, IPv4}, MasqueradeAll: true,
			NodeIPs:           addrs("192.168.1.5", "fd00:1::5"),
			ClusterCIDRs:      prefixes("10.244.0.0/16", "fd00:244::/56"),
			NodePortAddresses: prefixes("192.168.0.0/16"), NodePortPrimary: true},
		wantStates: map[Family]*State{
			IPv4: {Family: IPv4, Services: []ServicePort{v4}, MasqueradeAll: true, NodeIPs: addrs("192.168.1.5"),
				ClusterCIDRs: prefixes("10.244.0.0/16"), NodePortAddresses: prefixes("192.168.0.0/16", "192.168.1.5/32")},
			IPv6: {Family: IPv6, Services: []ServicePort{v6}, MasqueradeAll: true, NodeIPs: addrs("fd00:1::5"),
				ClusterCIDRs: prefixes("fd00:244::/56"), NodePortAddresses: prefixes("fd00:1::5/128")},
		},
	}, {
		name:     "dual-stack service on an IPv4 node: IPv4 only, no problem",
		services: []*v1.Service{dual},
		slices:   slices,
		want:     []ServicePort{v4},
	}, {
		name:     "nodePortAddresses 'all' (a zero CIDR) means every address",
		services: []*v1.Service{},
		opts:     &Options{NodeName: thisNode, Families: []Family{IPv4}, NodePortAddresses: prefixes("0.0.0.0/0", "10.0.0.0/8")},
		want:     []ServicePort{},
	}, {
		name:     "IPv6-only service on an IPv4 node is a problem",
		services: []*v1.Service{service("v6", "fd00:96::1"), service("v4", "10.96.0.1")},
		want:     []ServicePort{tcp80("v4", "10.96.0.1")},
		wantProblems: []Problem{{Service: types.NamespacedName{Namespace: "ns", Name: "v6"}, Reason: ReasonUnsupportedFamily,
			Message: "cluster IPs [fd00:96::1]: none of a family this node programs"}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func TestComputeBadInput(t *testing.T) {
	ok := service("ok", "10.96.0.1")
	okPort := tcp80("ok", "10.96.0.1")
	nn := func(name string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: name} }
	tests := []computeCase{{
		name:         "invalid cluster IP",
		services:     []*v1.Service{ok, service("bad", "10.96.0.300")},
		want:         []ServicePort{okPort},
		wantProblems: []Problem{{Service: nn("bad"), Reason: ReasonInvalidIP, Message: `cluster IP "10.96.0.300": not an IP address`}},
	}, {
		name: "invalid external IP and source range",
		services: []*v1.Service{ok,
			service("bad-ext", "10.96.0.2", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"nope"} }),
			service("bad-range", "10.96.0.3", func(s *v1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/33"} }),
		},
		want: []ServicePort{okPort},
		wantProblems: []Problem{
			{Service: nn("bad-ext"), Reason: ReasonInvalidIP, Message: `external IP "nope": not an IP address`},
			{Service: nn("bad-range"), Reason: ReasonInvalidIP, Message: `load-balancer source range "10.0.0.0/33" does not parse`},
		},
	}, {
		name: "bad ports skipped, good ports of the same service kept",
		services: []*v1.Service{service("multi", "10.96.0.5", withPorts(
			port("a", v1.ProtocolTCP, 80, 0),
			port("big", v1.ProtocolTCP, 70000, 0),
			port("zero", v1.ProtocolTCP, 0, 0),
			port("badnp", v1.ProtocolTCP, 81, 99999),
			port("icmp", "ICMP", 82, 0),
			port("a", v1.ProtocolTCP, 83, 0),
			port("dupnum", v1.ProtocolTCP, 80, 0),
			port("udp", v1.ProtocolUDP, 80, 0),
		))},
		want: []ServicePort{
			{Name: spn("multi", "a", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.5"), Port: 80},
			{Name: spn("multi", "udp", UDP), Protocol: UDP, ClusterIPs: addrs("10.96.0.5"), Port: 80},
		},
		wantProblems: []Problem{
			{Service: nn("multi"), Reason: ReasonDuplicatePort, Message: `port "a": name and protocol TCP used twice`},
			{Service: nn("multi"), Reason: ReasonDuplicatePort, Message: `port "dupnum": port 80/TCP used twice`},
			{Service: nn("multi"), Reason: ReasonInvalidPort, Message: `port "badnp": node port 99999 out of range`},
			{Service: nn("multi"), Reason: ReasonInvalidPort, Message: `port "big": port 70000 out of range`},
			{Service: nn("multi"), Reason: ReasonInvalidPort, Message: `port "zero": port 0 out of range`},
			{Service: nn("multi"), Reason: ReasonUnsupportedProtocol, Message: `port "icmp": protocol "ICMP" is not TCP, UDP or SCTP`},
		},
	}, {
		name: "invalid session affinity",
		services: []*v1.Service{ok,
			service("sticky", "10.96.0.2", func(s *v1.Service) {
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](0)}}
			}),
			service("weird", "10.96.0.3", func(s *v1.Service) { s.Spec.SessionAffinity = "Cookie" }),
		},
		want: []ServicePort{okPort},
		wantProblems: []Problem{
			{Service: nn("sticky"), Reason: ReasonInvalidSessionAffinity, Message: "session affinity timeout 0s out of range 1-86400"},
			{Service: nn("weird"), Reason: ReasonInvalidSessionAffinity, Message: `unknown session affinity "Cookie"`},
		},
	}, {
		name: "conflicting external IP and node port: the older service keeps them",
		services: []*v1.Service{
			service("new", "10.96.0.2", withCreated(2000), func(s *v1.Service) { s.Spec.ExternalIPs = []string{"198.51.100.1"} }),
			service("old", "10.96.0.1", withCreated(1000), func(s *v1.Service) { s.Spec.ExternalIPs = []string{"198.51.100.1"} }),
			service("np-old", "10.96.0.3", withCreated(1000), withType(v1.ServiceTypeNodePort), withPorts(port("p", v1.ProtocolUDP, 53, 30053))),
			service("np-new", "10.96.0.4", withCreated(3000), withType(v1.ServiceTypeNodePort), withPorts(port("p", v1.ProtocolUDP, 54, 30053))),
		},
		want: []ServicePort{
			{Name: spn("np-old", "p", UDP), Protocol: UDP, ClusterIPs: addrs("10.96.0.3"), Port: 53, NodePort: 30053},
			{Name: spn("old", "http", TCP), Protocol: TCP, ClusterIPs: addrs("10.96.0.1"), Port: 80, ExternalIPs: addrs("198.51.100.1")},
		},
		wantProblems: []Problem{
			{Service: nn("new"), Reason: ReasonPortConflict, Message: `port "http": 198.51.100.1:80/TCP is already used by service ns/old`},
			{Service: nn("np-new"), Reason: ReasonPortConflict, Message: `port "p": node port 30053/UDP is already used by service ns/np-old`},
		},
	}, {
		name: "health-check node port out of range",
		services: []*v1.Service{ok, service("lb", "10.96.0.2", withType(v1.ServiceTypeLoadBalancer),
			withPorts(port("http", v1.ProtocolTCP, 80, 30080)), withExternalLocal(-1))},
		want:         []ServicePort{okPort},
		wantProblems: []Problem{{Service: nn("lb"), Reason: ReasonInvalidPort, Message: "health-check node port -1 out of range"}},
	}, {
		name:     "nil objects are ignored",
		services: []*v1.Service{nil, ok},
		slices:   []*discovery.EndpointSlice{nil},
		want:     []ServicePort{okPort},
	}}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

func TestComputeNilSnapshot(t *testing.T) {
	got, problems := Compute(nil, Options{Families: []Family{IPv4}})
	want := map[Family]*State{IPv4: {Family: IPv4}}
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" || len(problems) != 0 {
		t.Fatalf("Compute(nil) (-want +got):\n%s\nproblems %v", diff, problems)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{name: "ok", opts: Options{Families: []Family{IPv4, IPv6}}},
		{name: "no family", opts: Options{}, wantErr: true},
		{name: "bad family", opts: Options{Families: []Family{5}}, wantErr: true},
		{name: "twice", opts: Options{Families: []Family{IPv4, IPv4}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate: %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
