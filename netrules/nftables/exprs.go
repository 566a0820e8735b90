package nftables

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/berthnode/berth/proxy"
)

// rule is one nftables rule: the expressions sent to the kernel and the
// text nft would print for them (for golden files and logs).
type rule struct {
	text  string
	exprs []expr.Any
}

// fam holds what differs between the ip and ip6 tables.
type fam struct {
	family     proxy.Family
	table      gnft.TableFamily
	nfproto    uint32
	addrLen    uint32
	saddrOff   uint32
	daddrOff   uint32
	name       string
	addrType   gnft.SetDatatype
	rejectCode uint8
	loopback   netip.Prefix
}

func newFam(f proxy.Family) (*fam, error) {
	switch f {
	case proxy.IPv4:
		return &fam{family: f, table: gnft.TableFamilyIPv4, nfproto: unix.NFPROTO_IPV4, addrLen: 4, saddrOff: 12, daddrOff: 16,
			name: "ip", addrType: gnft.TypeIPAddr, rejectCode: 3, loopback: netip.MustParsePrefix("127.0.0.0/8")}, nil
	case proxy.IPv6:
		return &fam{family: f, table: gnft.TableFamilyIPv6, nfproto: unix.NFPROTO_IPV6, addrLen: 16, saddrOff: 8, daddrOff: 24,
			name: "ip6", addrType: gnft.TypeIP6Addr, rejectCode: 4, loopback: netip.MustParsePrefix("::1/128")}, nil
	}
	return nil, fmt.Errorf("%w: unknown family %d", ErrInvalidState, f)
}

// Registers: the 32-bit ones from 8 on hold concatenated keys.
const (
	reg1     = 1
	reg2     = 2
	regConc0 = 8
)

func (f *fam) addr(src bool) *expr.Payload {
	off := f.daddrOff
	if src {
		off = f.saddrOff
	}
	return &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: f.addrLen}
}

func dir(src bool) string {
	if src {
		return "saddr"
	}
	return "daddr"
}

// matchAddr is "ip daddr A" (or saddr).
func (f *fam) matchAddr(src bool, a netip.Addr, neg bool) (string, []expr.Any) {
	op, sym := expr.CmpOpEq, ""
	if neg {
		op, sym = expr.CmpOpNeq, "!= "
	}
	return fmt.Sprintf("%s %s %s%s", f.name, dir(src), sym, a), []expr.Any{f.addr(src), &expr.Cmp{Op: op, Register: reg1, Data: a.AsSlice()}}
}

// matchPrefix is "ip saddr P" (or daddr, or !=).
func (f *fam) matchPrefix(src bool, p netip.Prefix, neg bool) (string, []expr.Any) {
	p = p.Masked()
	if p.Bits() == p.Addr().BitLen() {
		return f.matchAddr(src, p.Addr(), neg)
	}
	m := make([]byte, f.addrLen)
	for i := range p.Bits() {
		m[i/8] |= 0x80 >> (i % 8)
	}
	op, sym := expr.CmpOpEq, ""
	if neg {
		op, sym = expr.CmpOpNeq, "!= "
	}
	return fmt.Sprintf("%s %s %s%s", f.name, dir(src), sym, p), []expr.Any{
		f.addr(src),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: f.addrLen, Mask: m, Xor: make([]byte, f.addrLen)},
		&expr.Cmp{Op: op, Register: reg1, Data: p.Addr().AsSlice()},
	}
}

// fibLocal is "fib daddr type local" (or saddr).
func fibLocal(src bool) (string, []expr.Any) {
	return fmt.Sprintf("fib %s type local", dir(src)), []expr.Any{
		&expr.Fib{Register: reg1, ResultADDRTYPE: true, FlagDADDR: !src, FlagSADDR: src},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
	}
}

// hairpin matches a DNATed connection from an endpoint to itself: "ct
// status dnat ip saddr . ip daddr @hairpin".
func (f *fam) hairpin() (string, []expr.Any) {
	words := f.addrLen / 4
	return fmt.Sprintf("ct status dnat %s saddr . %s daddr @%s", f.name, f.name, setHairpin), []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, ctStatusDNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
		&expr.Payload{DestRegister: regConc0, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddrOff, Len: f.addrLen},
		&expr.Payload{DestRegister: regConc0 + words, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddrOff, Len: f.addrLen},
		&expr.Lookup{SourceRegister: regConc0, SetName: setHairpin},
	}
}

// ctNew is "ct state new".
func ctNew() (string, []expr.Any) { return ctState("new", expr.CtStateBitNEW) }

// ctInvalid is "ct state invalid".
func ctInvalid() (string, []expr.Any) { return ctState("invalid", expr.CtStateBitINVALID) }

func ctState(name string, bit uint32) (string, []expr.Any) {
	return "ct state " + name, []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, bit), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

// keyDestination loads daddr . l4proto . dport into the concatenation
// registers; keyNodePort loads l4proto . dport.
func (f *fam) keyDestination() []expr.Any {
	words := f.addrLen / 4
	return []expr.Any{
		&expr.Payload{DestRegister: regConc0, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddrOff, Len: f.addrLen},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: regConc0 + words},
		&expr.Payload{DestRegister: regConc0 + words + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

func keyNodePort() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: regConc0},
		&expr.Payload{DestRegister: regConc0 + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

// vmapLookup looks the key in the registers up in a verdict map.
func vmapLookup(src uint32, m string) *expr.Lookup {
	return &expr.Lookup{SourceRegister: src, DestRegister: 0, IsDestRegSet: true, SetName: m}
}

// destKey and nodePortKey are the map keys of those lookups: each field
// padded to 4 bytes, as the registers hold them.
func destKey(a netip.Addr, proto uint8, port uint16) []byte {
	k := append([]byte{}, a.AsSlice()...)
	k = append(k, proto, 0, 0, 0)
	return binary.BigEndian.AppendUint16(k, port)
}

func nodePortKey(proto uint8, port uint16) []byte {
	k := []byte{proto, 0, 0, 0}
	k = binary.BigEndian.AppendUint16(k, port)
	return append(k, 0, 0)
}

func padKey(k []byte) []byte {
	for len(k)%4 != 0 {
		k = append(k, 0)
	}
	return k
}

func verdict(kind expr.VerdictKind, chain string) *expr.Verdict {
	return &expr.Verdict{Kind: kind, Chain: chain}
}

func verdictText(v *expr.Verdict) string {
	switch v.Kind {
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictGoto:
		return "goto " + v.Chain
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictAccept:
		return "accept"
	}
	return fmt.Sprintf("verdict %d", v.Kind)
}

// markSet ORs bits into the packet mark ("meta mark set meta mark or B").
func markSet(bit uint32) (string, []expr.Any) {
	return fmt.Sprintf("meta mark set meta mark or 0x%x", bit), []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, ^bit), Xor: binary.NativeEndian.AppendUint32(nil, bit)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}
}

// markClear clears bits of the packet mark.
func markClear(bit uint32) (string, []expr.Any) {
	return fmt.Sprintf("meta mark set meta mark and 0x%x", ^bit), []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, ^bit), Xor: make([]byte, 4)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}
}

// markUnset is "meta mark and B == 0".
func markUnset(bit uint32) (string, []expr.Any) {
	return fmt.Sprintf("meta mark and 0x%x == 0", bit), []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, bit), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: make([]byte, 4)},
	}
}

// dnatMap is "dnat to numgen inc mod n offset base map @m": the
// map's value, address . port, lands in the registers from 1 on, the port
// in the 32-bit register after the address.
func (f *fam) dnatMap(m string, n, base uint32) rule {
	portReg := uint32(regConc0 + f.addrLen/4)
	return rule{text: fmt.Sprintf("dnat to numgen inc mod %d offset %d map @%s", n, base, m), exprs: []expr.Any{
		&expr.Numgen{Register: reg1, Modulus: n, Type: numgenInc, Offset: base},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: m},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: f.nfproto, RegAddrMin: reg1, RegProtoMin: portReg, Specified: true},
	}}
}

// affinityCheck sends a client the affinity set remembers to the set's
// endpoint chain: "ip saddr @aff goto chain".
func (f *fam) affinityCheck(set, chain string) rule {
	return rule{text: fmt.Sprintf("%s saddr @%s goto %s", f.name, set, chain), exprs: []expr.Any{
		f.addr(true),
		&expr.Lookup{SourceRegister: reg1, SetName: set},
		verdict(expr.VerdictGoto, chain),
	}}
}

// affinityUpdate adds the client to the affinity set, or refreshes its
// timeout: "update @aff { ip saddr }".
func (f *fam) affinityUpdate(set string, timeout time.Duration) rule {
	return rule{text: fmt.Sprintf("update @%s { %s saddr }", set, f.name), exprs: []expr.Any{
		f.addr(true),
		&expr.Dynset{SrcRegKey: reg1, SetName: set, Operation: dynsetUpdate, Timeout: timeout},
	}}
}

// dnat is "dnat to A:P".
func (f *fam) dnat(ap netip.AddrPort) rule {
	return rule{text: fmt.Sprintf("dnat to %s", ap), exprs: []expr.Any{
		&expr.Immediate{Register: reg1, Data: ap.Addr().AsSlice()},
		&expr.Immediate{Register: reg2, Data: binary.BigEndian.AppendUint16(nil, ap.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: f.nfproto, RegAddrMin: reg1, RegProtoMin: reg2, Specified: true},
	}}
}

// numgenVmap is "numgen inc mod n vmap @m".
func numgenVmap(m string, n uint32) rule {
	return rule{text: fmt.Sprintf("numgen inc mod %d vmap @%s", n, m), exprs: []expr.Any{
		&expr.Numgen{Register: reg1, Modulus: n, Type: numgenInc},
		vmapLookup(reg1, m),
	}}
}

// dynsetUpdate is the dynset "update" operation: add the element, or
// refresh its timeout.
const dynsetUpdate = unix.NFT_DYNSET_OP_UPDATE

// and appends a match or statement to the rule.
func (r rule) and(text string, e []expr.Any) rule {
	if r.text != "" {
		text = r.text + " " + text
	}
	return rule{text: text, exprs: append(append([]expr.Any{}, r.exprs...), e...)}
}

// jumpTo is a verdict statement.
func jumpTo(kind expr.VerdictKind, chain string) (string, []expr.Any) {
	v := verdict(kind, chain)
	return verdictText(v), []expr.Any{v}
}

func protoNum(p proxy.Protocol) (uint8, string, bool) {
	switch p {
	case proxy.TCP:
		return unix.IPPROTO_TCP, "tcp", true
	case proxy.UDP:
		return unix.IPPROTO_UDP, "udp", true
	case proxy.SCTP:
		return unix.IPPROTO_SCTP, "sctp", true
	}
	return 0, "", false
}

// ctStatusDNAT is IPS_DST_NAT, the conntrack status bit of a DNATed
// connection.
const ctStatusDNAT = 1 << 5
