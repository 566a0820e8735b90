package podnet

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/netrules/link"
	linktesting "github.com/berthnode/berth/netrules/link/testing"
)

// node builds a Node with the given pod CIDRs and addresses; an address
// starting with "ext:" is an ExternalIP, any other an InternalIP.
func node(name string, podCIDRs []string, addrs ...string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.NodeSpec{PodCIDRs: podCIDRs}}
	if len(podCIDRs) > 0 {
		n.Spec.PodCIDR = podCIDRs[0]
	}
	for _, a := range addrs {
		typ := v1.NodeInternalIP
		if len(a) > 4 && a[:4] == "ext:" {
			typ, a = v1.NodeExternalIP, a[4:]
		}
		n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: typ, Address: a})
	}
	return n
}

func cidrs(ss ...string) []string { return ss }

func rt(dst, gw string) link.Route {
	return link.Route{Dst: netip.MustParsePrefix(dst), Gateway: netip.MustParseAddr(gw)}
}

var cmpRoutes = cmp.Options{
	cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{}),
	cmpopts.EquateEmpty(),
}

type desiredRoutesCase struct {
	name        string
	nodes       []*v1.Node
	want        []nodeRoute
	wantSkipped []skippedNode
}

func runDesiredRoutes(t *testing.T, cases []desiredRoutesCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, skipped := desiredRoutes("self", tc.nodes)
			if diff := cmp.Diff(tc.want, got, cmpRoutes); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantSkipped, skipped, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("skipped (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDesiredRoutes(t *testing.T) {
	legacy := node("legacy", nil, "192.168.1.5")
	legacy.Spec.PodCIDR = "10.244.5.0/24" // written before dual-stack: no podCIDRs
	runDesiredRoutes(t, []desiredRoutesCase{{
		name:  "alone",
		nodes: []*v1.Node{node("self", cidrs("10.244.0.0/24"), "192.168.1.1")},
	}, {
		name: "ipv4 peers, sorted by name",
		nodes: []*v1.Node{
			node("c", cidrs("10.244.2.0/24"), "192.168.1.3"),
			node("self", cidrs("10.244.0.0/24"), "192.168.1.1"),
			node("b", cidrs("10.244.1.0/24"), "ext:203.0.113.2", "192.168.1.2"),
		},
		want: []nodeRoute{
			{"b", rt("10.244.1.0/24", "192.168.1.2")},
			{"c", rt("10.244.2.0/24", "192.168.1.3")},
		},
	}, {
		name: "dual-stack peer, each family via its own address",
		nodes: []*v1.Node{
			node("self", cidrs("10.244.0.0/24", "fd00:10:244::/64"), "192.168.1.1", "2001:db8::1"),
			node("b", cidrs("10.244.1.0/24", "fd00:10:244:1::/64"), "2001:db8::2", "192.168.1.2"),
		},
		want: []nodeRoute{
			{"b", rt("10.244.1.0/24", "192.168.1.2")},
			{"b", rt("fd00:10:244:1::/64", "2001:db8::2")},
		},
	}, {
		name: "the first InternalIP of a family wins",
		nodes: []*v1.Node{
			node("self", cidrs("10.244.0.0/24"), "192.168.1.1"),
			node("b", cidrs("10.244.1.0/24"), "192.168.1.2", "192.168.1.22"),
		},
		want: []nodeRoute{{"b", rt("10.244.1.0/24", "192.168.1.2")}},
	}, {
		name:  "legacy spec.podCIDR only",
		nodes: []*v1.Node{node("self", cidrs("10.244.0.0/24")), legacy},
		want:  []nodeRoute{{"legacy", rt("10.244.5.0/24", "192.168.1.5")}},
	}, {
		name:  "self missing: every other node gets routes",
		nodes: []*v1.Node{node("b", cidrs("10.244.1.0/24"), "192.168.1.2")},
		want:  []nodeRoute{{"b", rt("10.244.1.0/24", "192.168.1.2")}},
	}, {
		name:  "unmasked pod CIDR is masked",
		nodes: []*v1.Node{node("b", cidrs("10.244.1.7/24"), "192.168.1.2")},
		want:  []nodeRoute{{"b", rt("10.244.1.0/24", "192.168.1.2")}},
	}})
}

func TestDesiredRoutesSkips(t *testing.T) {
	runDesiredRoutes(t, []desiredRoutesCase{{
		name: "unusable peers are skipped, the others kept",
		nodes: []*v1.Node{
			node("self", cidrs("10.244.0.0/24"), "192.168.1.1"),
			node("b", cidrs("10.244.1.0/24"), "192.168.1.2"),
			node("no-cidr", nil, "192.168.1.3"),
			node("no-ip", cidrs("10.244.4.0/24")),
			node("ext-only", cidrs("10.244.6.0/24"), "ext:203.0.113.6"),
			node("v6-ip-only", cidrs("10.244.7.0/24"), "2001:db8::7"),
			node("bad-cidr", cidrs("10.244.8.0/33"), "192.168.1.8"),
			node("half", cidrs("10.244.9.0/24", "fd00:10:244:9::/64"), "192.168.1.9"),
		},
		want: []nodeRoute{
			{"b", rt("10.244.1.0/24", "192.168.1.2")},
			{"half", rt("10.244.9.0/24", "192.168.1.9")},
		},
		wantSkipped: []skippedNode{
			{"bad-cidr", `invalid podCIDR: node bad-cidr: podCIDR: netip.ParsePrefix("10.244.8.0/33"): prefix length out of range`},
			{"ext-only", "no InternalIP of the family of podCIDR 10.244.6.0/24"},
			{"half", "no InternalIP of the family of podCIDR fd00:10:244:9::/64"},
			{"no-cidr", "no podCIDR"},
			{"no-ip", "no InternalIP of the family of podCIDR 10.244.4.0/24"},
			{"v6-ip-only", "no InternalIP of the family of podCIDR 10.244.7.0/24"},
		},
	}, {
		name: "overlapping pod CIDRs: self's and then the first name's win",
		nodes: []*v1.Node{
			node("self", cidrs("10.244.0.0/24"), "192.168.1.1"),
			node("b", cidrs("10.244.0.0/25"), "192.168.1.2"),
			node("c", cidrs("10.244.1.0/24"), "192.168.1.3"),
			node("d", cidrs("10.244.1.0/24"), "192.168.1.4"),
		},
		want: []nodeRoute{{"c", rt("10.244.1.0/24", "192.168.1.3")}},
		wantSkipped: []skippedNode{
			{"b", "podCIDR 10.244.0.0/25 overlaps node self's"},
			{"d", "podCIDR 10.244.1.0/24 overlaps node c's"},
		},
	}})
}

func TestPlanRoutes(t *testing.T) {
	b := nodeRoute{"b", rt("10.244.1.0/24", "192.168.1.2")}
	c := nodeRoute{"c", rt("10.244.2.0/24", "192.168.1.3")}
	cases := []struct {
		name    string
		desired []nodeRoute
		current []link.Route
		wantAdd []nodeRoute
		wantDel []link.Route
	}{
		{name: "nothing"},
		{name: "all missing", desired: []nodeRoute{b, c}, wantAdd: []nodeRoute{b, c}},
		{name: "in sync", desired: []nodeRoute{b, c}, current: []link.Route{c.Route, b.Route}},
		{name: "stale", desired: []nodeRoute{b}, current: []link.Route{b.Route, c.Route}, wantDel: []link.Route{c.Route}},
		{
			name:    "moved gateway is replaced, not deleted",
			desired: []nodeRoute{b},
			current: []link.Route{rt("10.244.1.0/24", "192.168.1.99")},
			wantAdd: []nodeRoute{b},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			add, del := planRoutes(tc.desired, tc.current)
			if diff := cmp.Diff(tc.wantAdd, add, cmpRoutes); diff != "" {
				t.Errorf("add (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDel, del, cmpRoutes, cmpopts.SortSlices(linktesting.CompareRoutes)); diff != "" {
				t.Errorf("delete (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoutingChanged(t *testing.T) {
	base := node("b", cidrs("10.244.1.0/24"), "192.168.1.2", "ext:203.0.113.2")
	heartbeat := base.DeepCopy()
	heartbeat.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}
	heartbeat.ResourceVersion = "2"
	cases := []struct {
		name string
		new  *v1.Node
		want bool
	}{
		{"status heartbeat", heartbeat, false},
		{"external IP", node("b", cidrs("10.244.1.0/24"), "192.168.1.2", "ext:203.0.113.3"), false},
		{"internal IP", node("b", cidrs("10.244.1.0/24"), "192.168.1.3", "ext:203.0.113.2"), true},
		{"pod CIDR added", node("b", cidrs("10.244.1.0/24", "fd00::/64"), "192.168.1.2", "ext:203.0.113.2"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := routingChanged(base, tc.new); got != tc.want {
				t.Errorf("routingChanged = %v, want %v", got, tc.want)
			}
		})
	}
}
