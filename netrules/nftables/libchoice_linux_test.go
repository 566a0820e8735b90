package nftables_test

// The library benchmark behind the choice of github.com/google/nftables
// (docs/proxy.md, "nftables"): the raw ruleset through netlink. Its
// knftables half, which made the comparison, is in commit ea3ff97.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const libServices, libEndpoints = 10000, 5

func libVIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})
}

func libEP(i, j int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(128 + j), byte(i >> 8), byte(i)})
}

// BenchmarkLibraryGoogleNftables loads the same ruleset through netlink
// with github.com/google/nftables.
func BenchmarkLibraryGoogleNftables(b *testing.B) {
	if os.Getenv("BERTH_BENCH_LIBRARY") == "" {
		b.Skip("skipping: the library comparison takes minutes; set BERTH_BENCH_LIBRARY=1 to run it")
	}
	b.Run("anonymous-vmaps", func(b *testing.B) { benchGnft(b, false, false) })
	b.Run("named-vmaps", func(b *testing.B) { benchGnft(b, false, true) })
	b.Run("one-rr-map", func(b *testing.B) { benchGnft(b, true, false) })
}

// benchGnft runs the benchmark with a vmap per service chain (global
// false, as the knftables benchmark) or with one map for every service's
// round robin, keyed by service number . numgen.
func benchGnft(b *testing.B, global, named bool) {
	requireRoot(b)
	n := newTestNetns(b)
	c, err := gnft.New(gnft.WithNetNSFd(int(n.NS)), gnft.AsLasting(), gnft.WithSockOptions(bigBuffers))
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseLasting()
	table := &gnft.Table{Family: gnft.TableFamilyIPv4, Name: "libbench"}
	l := &libGnft{c: c, table: table, chains: map[string]*gnft.Chain{}, global: global, named: named}
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			c.AddTable(table)
			c.DelTable(table)
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			if err := l.cold(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms")
		}
	})
	b.Run("flip", func(b *testing.B) {
		b.ReportAllocs()
		gen := 0
		for b.Loop() {
			gen++
			start := time.Now()
			svc := l.chains["svc-0"]
			c.FlushChain(svc)
			if err := l.service(0, gen); err != nil {
				b.Fatal(err)
			}
			c.DelChain(l.chains[fmt.Sprintf("ep-0-0-%d", gen-1)])
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ms")
		}
	})
}

// bigBuffers lets one batch of a whole ruleset through: the kernel takes a
// batch in one message, and answers every message of it with an ack.
func bigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 1<<30); serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<30)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

type libGnft struct {
	c      *gnft.Conn
	table  *gnft.Table
	chains map[string]*gnft.Chain
	svcMap *gnft.Set
	global bool
	named  bool
	rrMap  *gnft.Set
}

func (l *libGnft) cold() error {
	c := l.c
	c.AddTable(l.table)
	l.svcMap = &gnft.Set{Table: l.table, Name: "services", IsMap: true, Concatenation: true,
		KeyType: gnft.MustConcatSetType(gnft.TypeIPAddr, gnft.TypeInetProto, gnft.TypeInetService), DataType: gnft.TypeVerdict}
	if err := c.AddSet(l.svcMap, nil); err != nil {
		return err
	}
	pre := c.AddChain(&gnft.Chain{Table: l.table, Name: "prerouting", Type: gnft.ChainTypeNAT,
		Hooknum: gnft.ChainHookPrerouting, Priority: gnft.ChainPriorityNATDest})
	c.AddRule(&gnft.Rule{Table: l.table, Chain: pre, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
		&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: 8, DestRegister: 0, IsDestRegSet: true, SetName: l.svcMap.Name, SetID: l.svcMap.ID},
	}})
	if l.global {
		l.rrMap = &gnft.Set{Table: l.table, Name: "rr", IsMap: true, Concatenation: true,
			KeyType: gnft.MustConcatSetType(gnft.TypeInteger, gnft.TypeInteger), DataType: gnft.TypeVerdict}
		if err := c.AddSet(l.rrMap, nil); err != nil {
			return err
		}
	}
	elems := make([]gnft.SetElement, 0, libServices)
	for i := range libServices {
		if err := l.service(i, 0); err != nil {
			return err
		}
		key := make([]byte, 12)
		copy(key, libVIP(i).AsSlice())
		key[4] = unix.IPPROTO_TCP
		binary.BigEndian.PutUint16(key[8:], 80)
		elems = append(elems, gnft.SetElement{Key: key, VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: fmt.Sprintf("svc-%d", i)}})
	}
	// A netlink attribute's length is 16 bits: element lists in chunks.
	for chunk := range slices.Chunk(elems, 256) {
		if err := c.SetAddElements(l.svcMap, chunk); err != nil {
			return err
		}
	}
	return c.Flush()
}

func (l *libGnft) service(i, gen int) error {
	c := l.c
	svcName := fmt.Sprintf("svc-%d", i)
	svc, ok := l.chains[svcName]
	if !ok {
		svc = c.AddChain(&gnft.Chain{Table: l.table, Name: svcName})
		l.chains[svcName] = svc
	}
	vmap := &gnft.Set{Table: l.table, Anonymous: true, Constant: true, IsMap: true, KeyType: gnft.TypeInteger, DataType: gnft.TypeVerdict}
	if l.named {
		// A name without "%d": the kernel does not look for a free number
		// among every set of the table.
		vmap = &gnft.Set{Table: l.table, Name: fmt.Sprintf("rr-%d-%d", i, gen), IsMap: true, KeyType: gnft.TypeInteger, DataType: gnft.TypeVerdict}
		if gen > 0 {
			defer c.DelSet(&gnft.Set{Table: l.table, Name: fmt.Sprintf("rr-%d-%d", i, gen-1)})
		}
	}
	var elems []gnft.SetElement
	for j := range libEndpoints {
		name := fmt.Sprintf("ep-%d-%d", i, j)
		if j == 0 && i == 0 {
			name = fmt.Sprintf("ep-0-0-%d", gen)
		}
		if gen == 0 || j == 0 {
			l.endpoint(name, libEP(i, j))
		}
		elems = append(elems, gnft.SetElement{Key: binary.NativeEndian.AppendUint32(nil, uint32(j)),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: name}})
	}
	if l.global {
		for k := range elems {
			elems[k].Key = binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(nil, uint32(i)), uint32(k))
		}
		if gen > 0 {
			if err := c.SetDeleteElements(l.rrMap, elems); err != nil {
				return err
			}
		}
		if err := c.SetAddElements(l.rrMap, elems); err != nil {
			return err
		}
		c.AddRule(&gnft.Rule{Table: l.table, Chain: svc, Exprs: []expr.Any{
			&expr.Immediate{Register: 8, Data: binary.NativeEndian.AppendUint32(nil, uint32(i))},
			&expr.Numgen{Register: 9, Modulus: libEndpoints, Type: unix.NFT_NG_INCREMENTAL},
			&expr.Lookup{SourceRegister: 8, DestRegister: 0, IsDestRegSet: true, SetName: l.rrMap.Name, SetID: l.rrMap.ID},
		}})
		return nil
	}
	if err := c.AddSet(vmap, elems); err != nil {
		return err
	}
	c.AddRule(&gnft.Rule{Table: l.table, Chain: svc, Exprs: []expr.Any{
		&expr.Numgen{Register: 1, Modulus: libEndpoints, Type: unix.NFT_NG_INCREMENTAL},
		&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: vmap.Name, SetID: vmap.ID},
	}})
	return nil
}

func (l *libGnft) endpoint(name string, ip netip.Addr) {
	c := l.c
	ch := c.AddChain(&gnft.Chain{Table: l.table, Name: name})
	l.chains[name] = ch
	addr := ip.AsSlice()
	c.AddRule(&gnft.Rule{Table: l.table, Chain: ch, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{0xff, 0xbf, 0xff, 0xff}, Xor: []byte{0, 0x40, 0, 0}},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}})
	c.AddRule(&gnft.Rule{Table: l.table, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Immediate{Register: 1, Data: addr},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, 8080)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}})
}
