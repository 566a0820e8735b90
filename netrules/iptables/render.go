package iptables

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
)

var (
	// ErrInvalidState is returned by Render for a State that Compute
	// never produces: an unknown family or protocol, a missing port, an
	// invalid address, two service ports with the same key.
	ErrInvalidState = errors.New("invalid proxy state")

	// ErrChainNameCollision is returned by Render when two different
	// service ports or endpoints hash to the same chain name (about one
	// chance in a million with 50,000 chains). Their rules would mix, so
	// the renderer refuses rather than program either wrongly.
	ErrChainNameCollision = errors.New("chain name collision")
)

// DefaultMasqueradeBit is kube-proxy's default: mark 0x4000.
const DefaultMasqueradeBit = 14

// RenderOptions are the settings of a render that are not part of a State.
type RenderOptions struct {
	// MasqueradeBit is the bit of the packet mark (0-31) that asks
	// BERTH-POSTROUTING to masquerade a connection.
	MasqueradeBit int
	// TCPBeLiberal tells that the node's conntrack accepts out-of-window
	// TCP packets (nf_conntrack_tcp_be_liberal=1); otherwise BERTH-FORWARD
	// drops packets conntrack finds INVALID, which would else reach
	// endpoints un-NATed and be answered with resets.
	TCPBeLiberal bool
}

// Validate reports why the options cannot be rendered.
func (o RenderOptions) Validate() error {
	if o.MasqueradeBit < 0 || o.MasqueradeBit > 31 {
		return fmt.Errorf("masquerade bit %d is not in 0-31", o.MasqueradeBit)
	}
	return nil
}

// Payload is what Render produces: one restore input per table and what
// applying them leaves in the kernel.
type Payload struct {
	// Tables are the inputs to apply, filter first, then nat.
	Tables []xtables.TableData
	// Full tells whether every service port's chains are in the payload.
	Full bool
	// Chains are the berth chains the kernel holds once the payload is
	// applied; set when the render planned every service port (Render
	// always does), nil for the partial payloads of a Renderer, which
	// keeps track of them itself.
	Chains ChainSet
	// TopRules is the number of rules in the top-level chains.
	TopRules int
	// Rules is the number of rules in every berth chain once the payload is
	// applied.
	Rules int
	// ServiceRules is, for each service port whose chains the payload
	// writes (by Name.Key()), the number of rules in those chains.
	ServiceRules map[string]int
}

// Bytes is the total size of the restore inputs held in memory (a
// streamed table counts only once written, see xtables.TableData.WriteTo).
func (p *Payload) Bytes() int {
	n := 0
	for _, t := range p.Tables {
		n += len(t.Data)
	}
	return n
}

// Render turns a State into iptables-restore --noflush inputs. It is pure:
// the same arguments always give the same payload.
//
// changed holds the Name.Key() of the service ports whose rules may differ
// from what the kernel holds; nil asks for a full payload. The per-service
// chains (SVC, SVX, EXT, FW, SEP) of the other service ports are neither
// declared nor written, so their rules (and the round-robin counters in
// them) stay as they are, unless one of their chains is missing from
// existing. Render remembers nothing, so the top-level chains are always
// rewritten in full (a Renderer leaves them alone when they did not
// change). existing holds the berth chains the kernel has now (see
// ChainSet.ParseChains); those the state no longer needs are flushed and
// deleted.
func Render(state *proxy.State, opts RenderOptions, changed map[string]bool, existing ChainSet) (Payload, error) {
	return NewRenderer(opts).Render(state, changed, existing)
}

// globals are the State's node-wide settings, formatted for the family.
type globals struct {
	family proxy.Family
	// mark matches and sets the masquerade mark ("0x4000/0x4000");
	// markOff clears it ("0x4000/0x0").
	mark, markOff string
	// clusterCIDRs are the pod CIDRs of the family, formatted.
	clusterCIDRs  []string
	masqueradeAll bool
	// nodePortDsts are the destination prefixes node ports answer on; nil
	// means every local address but loopback.
	nodePortDsts []string
	nodeIPs      []netip.Addr
	hostBits     string
	rejectWith   string
	recentMask   string
	loopback     string
	tcpBeLiberal bool
}

func newGlobals(state *proxy.State, opts RenderOptions) (*globals, error) {
	if state == nil {
		return nil, fmt.Errorf("%w: nil state", ErrInvalidState)
	}
	bit := fmt.Sprintf("0x%x", uint32(1)<<opts.MasqueradeBit)
	g := &globals{
		family:        state.Family,
		mark:          bit + "/" + bit,
		markOff:       bit + "/0x0",
		masqueradeAll: state.MasqueradeAll,
		tcpBeLiberal:  opts.TCPBeLiberal,
	}
	switch state.Family {
	case proxy.IPv4:
		g.hostBits, g.rejectWith, g.loopback = "/32", "icmp-port-unreachable", "127.0.0.0/8"
		g.recentMask = "255.255.255.255"
	case proxy.IPv6:
		g.hostBits, g.rejectWith, g.loopback = "/128", "icmp6-port-unreachable", "::1/128"
		g.recentMask = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	default:
		return nil, fmt.Errorf("%w: unknown family %d", ErrInvalidState, state.Family)
	}
	for _, p := range state.ClusterCIDRs {
		if s, ok := g.prefix(p); ok {
			g.clusterCIDRs = append(g.clusterCIDRs, s)
		}
	}
	g.nodePortDsts = g.nodePortPrefixes(state.NodePortAddresses)
	for _, a := range state.NodeIPs {
		if a, ok := g.addr(a); ok {
			g.nodeIPs = append(g.nodeIPs, a)
		}
	}
	return g, nil
}

// nodePortPrefixes formats the node-port prefixes of the family, as
// kube-proxy reads --nodeport-addresses: none of the family, or a zero
// prefix, means every local address; loopback prefixes are left out (a
// node port on localhost needs route_localnet, which berth does not set).
func (g *globals) nodePortPrefixes(prefixes []netip.Prefix) []string {
	var out []string
	for _, p := range prefixes {
		s, ok := g.prefix(p)
		if !ok {
			continue
		}
		if p.Bits() == 0 {
			return nil
		}
		if p.Masked().Addr().IsLoopback() {
			continue
		}
		out = append(out, s)
	}
	return out
}

// addr returns a in the form the family's iptables takes, and whether it
// belongs to the family at all.
func (g *globals) addr(a netip.Addr) (netip.Addr, bool) {
	if !a.IsValid() || proxy.Of(a) != g.family {
		return netip.Addr{}, false
	}
	if g.family == proxy.IPv4 {
		return a.Unmap(), true
	}
	return a.WithZone(""), true
}

// host formats an address of the family as iptables-save prints it.
func (g *globals) host(a netip.Addr) string {
	return a.String() + g.hostBits
}

// prefix formats a prefix of the family (masked, as iptables-save prints
// it), and whether it is of the family.
func (g *globals) prefix(p netip.Prefix) (string, bool) {
	if !p.IsValid() {
		return "", false
	}
	if a := p.Addr(); a.Is4In6() || (g.family == proxy.IPv4) != a.Is4() {
		return "", false
	}
	return p.Masked().String(), true
}

// payloadWriter writes the rules of one payload into its tables' writers.
type payloadWriter struct {
	g *globals
	// nat and filter take the top-level chains; own the per-service
	// chains (in nat).
	nat, filter, own *xtables.Writer
}

func newPayloadWriter(g *globals) *payloadWriter {
	return &payloadWriter{g: g, nat: xtables.NewWriter(xtables.TableNAT), filter: xtables.NewWriter(xtables.TableFilter), own: xtables.NewWriter(xtables.TableNAT)}
}

// topChains lists the top-level chains of a table.
func topChains(t xtables.Table) []string {
	if t == xtables.TableNAT {
		return []string{ChainServices, ChainNodePorts, ChainPostrouting, ChainMarkMasq, ChainMarkOffCluster}
	}
	return []string{ChainServices, ChainExternalServices, ChainNodePorts, ChainFirewall, ChainForward}
}

// writeTopNAT declares the top-level chains of the nat table and writes
// their rules that do not depend on services.
func (r *payloadWriter) writeTopNAT() {
	g := r.g
	for _, c := range topChains(xtables.TableNAT) {
		r.nat.Declare(c)
	}
	r.nat.Add(ChainPostrouting, "-m mark ! --mark", g.mark, "-j RETURN")
	r.nat.Add(ChainPostrouting, "-j MARK --set-xmark", g.markOff)
	r.nat.Add(ChainPostrouting, xtables.Comment("berth service traffic requiring SNAT"), "-j MASQUERADE --random-fully")
	r.nat.Add(ChainMarkMasq, "-j MARK --set-xmark", g.mark)
	if len(g.clusterCIDRs) > 1 {
		for _, c := range g.clusterCIDRs {
			r.nat.Add(ChainMarkOffCluster, "-s", c, "-j RETURN")
		}
		r.nat.Add(ChainMarkOffCluster, "-j", ChainMarkMasq)
	}
}

// writeTopFilter declares the top-level chains of the filter table and
// writes their rules that do not depend on services.
func (r *payloadWriter) writeTopFilter() {
	g := r.g
	for _, c := range topChains(xtables.TableFilter) {
		r.filter.Declare(c)
	}
	if !g.tcpBeLiberal {
		r.filter.Add(ChainForward, "-m conntrack --ctstate INVALID -j DROP")
	}
	r.filter.Add(ChainForward, xtables.Comment("berth forwarding rules"), "-m mark --mark", g.mark, "-j ACCEPT")
	r.filter.Add(ChainForward, xtables.Comment("berth forwarding conntrack rule"),
		"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
}

// writeNodePortJump ends nat BERTH-SERVICES with the jump to the node
// ports: last, so that a service IP that is also local is matched as a
// service IP first.
func (r *payloadWriter) writeNodePortJump() {
	const text = "berth service nodeports; NOTE: this must be the last rule in this chain"
	if r.g.nodePortDsts == nil {
		r.nat.Add(ChainServices, "! -d", r.g.loopback, xtables.Comment(text), "-m addrtype --dst-type LOCAL -j", ChainNodePorts)
		return
	}
	for _, d := range r.g.nodePortDsts {
		r.nat.Add(ChainServices, "-d", d, xtables.Comment(text), "-m addrtype --dst-type LOCAL -j", ChainNodePorts)
	}
}

// removeStale flushes and deletes the berth chains that exist but that the
// payload does not keep, in a stable order.
func (r *payloadWriter) removeStale(existing, keep ChainSet) {
	var stale []ChainRef
	for ref := range existing {
		if !keep[ref] && ownChain(ref.Chain) {
			stale = append(stale, ref)
		}
	}
	slices.SortFunc(stale, func(a, b ChainRef) int {
		return cmp.Or(strings.Compare(string(a.Table), string(b.Table)), strings.Compare(a.Chain, b.Chain))
	})
	for _, ref := range stale {
		switch ref.Table {
		case xtables.TableNAT:
			r.nat.Remove(ref.Chain)
		case xtables.TableFilter:
			r.filter.Remove(ref.Chain)
		}
	}
}

// itoa formats a port.
func itoa(n uint16) string { return strconv.Itoa(int(n)) }
