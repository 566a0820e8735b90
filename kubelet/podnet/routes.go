package podnet

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/berthnode/berth/netrules/link"
)

// nodeRoute is a route to a Node's pod CIDR, with the Node it leads to (for
// logs and errors).
type nodeRoute struct {
	// Node is the Node whose pod CIDR Route leads to.
	Node string
	// Route is the route to install.
	Route link.Route
}

// skippedNode is a Node, or one of its pod CIDRs, that gets no route, and
// why.
type skippedNode struct {
	// Node is the Node's name.
	Node string
	// Reason says why it gets no route, for the log.
	Reason string
}

// podCIDRs returns a Node's pod CIDRs (spec.podCIDRs, or spec.podCIDR on a
// Node written before dual-stack), masked.
func podCIDRs(node *v1.Node) ([]netip.Prefix, error) {
	raw := node.Spec.PodCIDRs
	if len(raw) == 0 && node.Spec.PodCIDR != "" {
		raw = []string{node.Spec.PodCIDR}
	}
	cidrs := make([]netip.Prefix, 0, len(raw))
	for _, s := range raw {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("node %s: podCIDR: %w", node.Name, err)
		}
		cidrs = append(cidrs, p.Masked())
	}
	return cidrs, nil
}

// internalIP returns the Node's first InternalIP of the family of want
// (IPv4 if want.Is4()), or the zero Addr.
func internalIP(node *v1.Node, want netip.Addr) netip.Addr {
	for _, a := range node.Status.Addresses {
		if a.Type != v1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() == want.Is4() {
			return ip
		}
	}
	return netip.Addr{}
}

// desiredRoutes returns the route to every pod CIDR of every Node but self,
// via that Node's InternalIP of the same family, ordered by Node name; and
// the Nodes (or pod CIDRs) that get none: no podCIDR yet, no InternalIP of
// the family, or a pod CIDR that overlaps self's or an earlier Node's.
func desiredRoutes(self string, nodes []*v1.Node) ([]nodeRoute, []skippedNode) {
	nodes = slices.SortedFunc(slices.Values(nodes), func(a, b *v1.Node) int { return cmp.Compare(a.Name, b.Name) })
	// claimed maps a pod CIDR to the Node it belongs to; self's come first.
	claimed := map[netip.Prefix]string{}
	for _, n := range nodes {
		if n.Name != self {
			continue
		}
		cidrs, _ := podCIDRs(n) // self's own errors are reported by the config sync
		for _, c := range cidrs {
			claimed[c] = n.Name
		}
	}
	var routes []nodeRoute
	var skipped []skippedNode
	skip := func(node, format string, args ...any) {
		skipped = append(skipped, skippedNode{Node: node, Reason: fmt.Sprintf(format, args...)})
	}
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		cidrs, err := podCIDRs(n)
		switch {
		case err != nil:
			skip(n.Name, "invalid podCIDR: %v", err)
			continue
		case len(cidrs) == 0:
			skip(n.Name, "no podCIDR")
			continue
		}
		for _, c := range cidrs {
			if owner := overlapping(claimed, c); owner != "" {
				skip(n.Name, "podCIDR %s overlaps node %s's", c, owner)
				continue
			}
			gw := internalIP(n, c.Addr())
			if !gw.IsValid() {
				skip(n.Name, "no InternalIP of the family of podCIDR %s", c)
				continue
			}
			claimed[c] = n.Name
			routes = append(routes, nodeRoute{Node: n.Name, Route: link.Route{Dst: c, Gateway: gw}})
		}
	}
	return routes, skipped
}

// overlapping returns the Node whose claimed pod CIDR overlaps c, or "".
func overlapping(claimed map[netip.Prefix]string, c netip.Prefix) string {
	var owners []string
	for p, node := range claimed {
		if p.Overlaps(c) {
			owners = append(owners, node)
		}
	}
	if len(owners) == 0 {
		return ""
	}
	return slices.Min(owners) // deterministic, though overlaps should not happen
}

// planRoutes returns what turns current (berth's routes in the kernel) into
// desired: the routes to add, and the stale routes to delete. A route whose
// destination is desired via another gateway is not deleted: adding the
// desired one replaces it.
func planRoutes(desired []nodeRoute, current []link.Route) (add []nodeRoute, del []link.Route) {
	have := make(map[link.Route]bool, len(current))
	for _, r := range current {
		have[r] = true
	}
	want := make(map[netip.Prefix]bool, len(desired))
	for _, d := range desired {
		want[d.Route.Dst] = true
		if !have[d.Route] {
			add = append(add, d)
		}
	}
	for _, r := range current {
		if !want[r.Dst] {
			del = append(del, r)
		}
	}
	return add, del
}
