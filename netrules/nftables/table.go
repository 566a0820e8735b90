package nftables

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// numgenInc is numgen's "inc" mode.
const numgenInc = unix.NFT_NG_INCREMENTAL

func nativeU32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// baseChain is a chain berth's table hooks into netfilter.
type baseChain struct {
	name     string
	typ      gnft.ChainType
	hook     *gnft.ChainHook
	priority *gnft.ChainPriority
	text     string
	// target is the regular chain it jumps to.
	rules []rule
}

// topLevel is the part of the table that does not depend on services.
type topLevel struct {
	base   []baseChain
	chains []chainDef
}

func (g *globals) topLevel() topLevel {
	f := g.f
	var t topLevel
	jump := func(c string) []rule { return []rule{rule{}.and(jumpTo(expr.VerdictJump, c))} }
	filterPrio := gnft.ChainPriorityRef(-1)
	newJump := []rule{rule{}.and(ctNew()).and(jumpTo(expr.VerdictJump, chainNoEndpoints))}
	forward := newJump
	if !g.tcpBeLiberal {
		// Packets conntrack finds INVALID (out of the TCP window) would
		// reach endpoints un-NATed and be answered with resets.
		forward = append([]rule{rule{}.and(ctInvalid()).and(jumpTo(expr.VerdictDrop, ""))}, newJump...)
	}
	post := []rule{
		rule{}.and(f.hairpin()).and(jumpTo(expr.VerdictJump, chainMarkMasq)),
		rule{}.and(markUnset(g.bit)).and(jumpTo(expr.VerdictReturn, "")),
		rule{}.and(markClear(g.bit)),
		{text: "masquerade fully-random", exprs: []expr.Any{&expr.Masq{FullyRandom: true}}},
	}
	t.base = []baseChain{
		{chainNATPrerouting, gnft.ChainTypeNAT, gnft.ChainHookPrerouting, gnft.ChainPriorityNATDest, "type nat hook prerouting priority dstnat", jump(chainServices)},
		{chainNATOutput, gnft.ChainTypeNAT, gnft.ChainHookOutput, gnft.ChainPriorityNATDest, "type nat hook output priority dstnat", jump(chainServices)},
		{chainNATPostrouting, gnft.ChainTypeNAT, gnft.ChainHookPostrouting, gnft.ChainPriorityNATSource, "type nat hook postrouting priority srcnat", post},
		{chainFilterInput, gnft.ChainTypeFilter, gnft.ChainHookInput, filterPrio, "type filter hook input priority filter - 1", newJump},
		{chainFilterForward, gnft.ChainTypeFilter, gnft.ChainHookForward, filterPrio, "type filter hook forward priority filter - 1", forward},
		{chainFilterOutput, gnft.ChainTypeFilter, gnft.ChainHookOutput, filterPrio, "type filter hook output priority filter - 1", newJump},
	}
	services := chainDef{name: chainServices, rules: []rule{{
		text:  fmt.Sprintf("%s daddr . meta l4proto . th dport vmap @%s", f.name, mapServices),
		exprs: append(f.keyDestination(), vmapLookup(regConc0, mapServices)),
	}}}
	noEPs := chainDef{name: chainNoEndpoints, rules: []rule{{
		text:  fmt.Sprintf("%s daddr . meta l4proto . th dport vmap @%s", f.name, mapNoEndpoints),
		exprs: append(f.keyDestination(), vmapLookup(regConc0, mapNoEndpoints)),
	}}}
	// Node ports last, so that a service IP that is also local is matched
	// as a service IP first.
	for _, m := range g.nodePortMatches() {
		services.rules = append(services.rules, m.and(fibLocal(false)).and("meta l4proto . th dport vmap @"+mapNodePorts,
			append(keyNodePort(), vmapLookup(regConc0, mapNodePorts))))
		noEPs.rules = append(noEPs.rules, m.and(fibLocal(false)).and("meta l4proto . th dport vmap @"+mapNoEndpointNodePorts,
			append(keyNodePort(), vmapLookup(regConc0, mapNoEndpointNodePorts))))
	}
	noEPs.rules = append(noEPs.rules, rule{
		text:  fmt.Sprintf("%s daddr @%s goto %s", f.name, setClusterIPs, chainReject),
		exprs: []expr.Any{f.addr(false), &expr.Lookup{SourceRegister: reg1, SetName: setClusterIPs}, verdict(expr.VerdictGoto, chainReject)},
	})
	offCluster := chainDef{name: chainMarkOffCluster}
	for _, c := range g.clusterCIDRs {
		offCluster.rules = append(offCluster.rules, rule{}.and(f.matchPrefix(true, c, false)).and(jumpTo(expr.VerdictReturn, "")))
	}
	offCluster.rules = append(offCluster.rules, jump(chainMarkMasq)...)
	t.chains = []chainDef{
		services, noEPs,
		{name: chainMarkMasq, rules: []rule{rule{}.and(markSet(g.bit))}},
		offCluster,
		{name: chainReject, rules: []rule{{text: "reject with icmp" + map[bool]string{true: "", false: "v6"}[f.addrLen == 4] + " port-unreachable",
			exprs: []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: f.rejectCode}}}}},
	}
	return t
}

// nodePortMatches are the destination matches of node ports: one per
// node-port prefix, or "not loopback" for every local address.
func (g *globals) nodePortMatches() []rule {
	if g.nodePortDsts == nil {
		return []rule{rule{}.and(g.f.matchPrefix(false, g.f.loopback, true))}
	}
	var out []rule
	for _, p := range g.nodePortDsts {
		out = append(out, rule{}.and(g.f.matchPrefix(false, p, false)))
	}
	return out
}

// sharedMap is one of the table's maps or sets that every service port
// adds elements to.
type sharedMap struct {
	name string
	key  []gnft.SetDatatype
	// data is the value type of a data map; verdict maps have none.
	data *gnft.SetDatatype
	// set tells that it is a set, not a map.
	set bool
}

// sharedMaps are the table's shared maps and sets.
func (f *fam) sharedMaps() []sharedMap {
	dest := []gnft.SetDatatype{f.addrType, gnft.TypeInetProto, gnft.TypeInetService}
	np := []gnft.SetDatatype{gnft.TypeInetProto, gnft.TypeInetService}
	ep := gnft.MustConcatSetType(f.addrType, gnft.TypeInetService)
	out := []sharedMap{
		{name: mapServices, key: dest}, {name: mapNodePorts, key: np},
		{name: mapNoEndpoints, key: dest}, {name: mapNoEndpointNodePorts, key: np},
		{name: setHairpin, key: []gnft.SetDatatype{f.addrType, f.addrType}, set: true},
		{name: setClusterIPs, key: []gnft.SetDatatype{f.addrType}, set: true},
	}
	for i := range endpointShards {
		out = append(out, sharedMap{name: fmt.Sprintf("%s-%02x", mapEndpoints, i), key: []gnft.SetDatatype{numgenType}, data: &ep})
	}
	return out
}

// Text renders the table as nft would list it (rules in berth's own
// notation where nft's differs little), in a stable order: for golden
// files and logs.
func renderText(f *fam, top topLevel, plans []*servicePlan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", f.name, TableName)
	shared := map[string][]elem{}
	for _, p := range plans {
		for m, es := range p.elems {
			shared[m] = append(shared[m], es...)
		}
	}
	for _, m := range f.sharedMaps() {
		if strings.HasPrefix(m.name, mapEndpoints+"-") && len(shared[m.name]) == 0 {
			continue // of the endpoint shards, only those in use
		}
		var names []string
		for _, k := range m.key {
			names = append(names, k.Name)
		}
		kind, value := "map", " : verdict"
		if m.set {
			kind, value = "set", ""
		} else if m.data != nil {
			value = " : " + m.data.Name
		}
		fmt.Fprintf(&b, "\t%s %s {\n\t\ttype %s%s\n", kind, m.name, strings.Join(names, " . "), value)
		writeElems(&b, shared[m.name])
		b.WriteString("\t}\n")
	}
	for _, c := range top.base {
		fmt.Fprintf(&b, "\tchain %s {\n\t\t%s;\n", c.name, c.text)
		for _, r := range c.rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.text)
		}
		b.WriteString("\t}\n")
	}
	writeChains(&b, top.chains)
	for _, p := range plans {
		for _, o := range p.own {
			if o.timeout > 0 {
				fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n\t\tflags dynamic,timeout\n\t\ttimeout %s\n\t}\n", o.name, f.addrType.Name, o.timeout)
				continue
			}
			fmt.Fprintf(&b, "\tmap %s {\n\t\ttype %s : verdict\n", o.name, numgenType.Name)
			writeElems(&b, o.elems)
			b.WriteString("\t}\n")
		}
		writeChains(&b, p.chains)
	}
	b.WriteString("}\n")
	return b.String()
}

func writeElems(b *strings.Builder, es []elem) {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = "\t\t\t" + e.text
	}
	sort.Strings(lines)
	lines = slices.Compact(lines)
	if len(lines) == 0 {
		return
	}
	b.WriteString("\t\telements = {\n")
	b.WriteString(strings.Join(lines, ",\n"))
	b.WriteString(" }\n")
}

func writeChains(b *strings.Builder, chains []chainDef) {
	for _, c := range chains {
		fmt.Fprintf(b, "\tchain %s {\n", c.name)
		for _, r := range c.rules {
			fmt.Fprintf(b, "\t\t%s\n", r.text)
		}
		b.WriteString("\t}\n")
	}
}

// numgenType is the type of numgen values in maps: nft's "mark" (32 bits,
// host byte order, as numgen writes them), which nft can list.
var numgenType = gnft.TypeMark
