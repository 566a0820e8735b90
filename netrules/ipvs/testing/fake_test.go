package testing_test

import (
	"errors"
	"net/netip"
	"slices"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/netrules/ipvs"
	ipvstesting "github.com/berthnode/berth/netrules/ipvs/testing"
	"github.com/berthnode/berth/proxy"
)

func TestFakeKernelRules(t *testing.T) {
	f := ipvstesting.NewFake()
	s := ipvs.Service{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: proxy.TCP, Scheduler: "rr"}
	d := ipvs.Destination{Addr: netip.MustParseAddr("10.244.1.2"), Port: 8080, Weight: 1}
	if err := f.NewDestination(s, d); !errors.Is(err, ipvs.ErrNotFound) {
		t.Errorf("destination of a missing service: %v", err)
	}
	if err := f.NewService(s); err != nil {
		t.Fatal(err)
	}
	if err := f.NewService(s); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("service twice: %v", err)
	}
	bad := s
	bad.Scheduler = "random"
	bad.Port = 81
	if err := f.NewService(bad); err == nil {
		t.Error("unknown scheduler taken")
	}
	if err := f.NewDestination(s, d); err != nil {
		t.Fatal(err)
	}
	if err := f.NewDestination(s, d); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("destination twice: %v", err)
	}
	v6 := ipvs.Destination{Addr: netip.MustParseAddr("fd00::1"), Port: 1, Weight: 1}
	if err := f.NewDestination(s, v6); err == nil {
		t.Error("destination of the other family taken")
	}
	svcs, err := f.GetServices()
	if err != nil || len(svcs) != 1 || svcs[0].Flags&ipvs.FlagHashed == 0 {
		t.Errorf("GetServices = %+v, %v; want one service with the hashed flag", svcs, err)
	}
	f.Fail("DelService", errors.New("boom"))
	if err := f.DelService(s); err == nil {
		t.Error("injected failure not returned")
	}
	if _, ok := f.Service(s.Key()); !ok {
		t.Error("a failed DelService deleted the service")
	}
	if err := f.DelDestination(s, v6); !errors.Is(err, ipvs.ErrNotFound) {
		t.Errorf("deleting a missing destination: %v", err)
	}
	calls, writes := f.Calls(), f.Writes()
	if !slices.Contains(calls, "GetServices") || slices.Contains(writes, "GetServices") || len(writes) != len(calls)-1 {
		t.Errorf("calls %q, writes %q: want every call but GetServices among the writes", calls, writes)
	}
	if !slices.Contains(writes, "DelService TCP 10.96.0.10:80") {
		t.Errorf("writes %q lack the failed DelService", writes)
	}
}

func TestFakeRoundRobin(t *testing.T) {
	f := ipvstesting.NewFake()
	s := ipvs.Service{Addr: netip.MustParseAddr("10.96.0.10"), Port: 80, Protocol: proxy.TCP, Scheduler: "rr"}
	if err := f.NewService(s); err != nil {
		t.Fatal(err)
	}
	var dests []netip.AddrPort
	for i, w := range []int{1, 0, 1} {
		d := ipvs.Destination{Addr: netip.AddrFrom4([4]byte{10, 244, 1, byte(i + 1)}), Port: 80, Weight: w}
		if err := f.NewDestination(s, d); err != nil {
			t.Fatal(err)
		}
		dests = append(dests, d.AddrPort())
	}
	client := netip.MustParseAddr("203.0.113.1")
	var got []netip.AddrPort
	for range 4 {
		ap, ok := f.Connect(s.Key(), client)
		if !ok {
			t.Fatal("no destination")
		}
		got = append(got, ap)
	}
	// Weight 0 takes no turn.
	want := []netip.AddrPort{dests[0], dests[2], dests[0], dests[2]}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("turns (-want +got):\n%s", diff)
	}
	v, _ := f.Service(s.Key())
	if v.Destinations[0].ActiveConnections != 2 || v.Destinations[1].ActiveConnections != 0 {
		t.Errorf("connection counters: %+v", v.Destinations)
	}
	for _, d := range dests {
		f.SetConnections(s.Key(), d, 0, 0)
	}
	if err := f.UpdateDestination(s, ipvs.Destination{Addr: dests[0].Addr(), Port: 80, Weight: 0}); err != nil {
		t.Fatal(err)
	}
	if err := f.UpdateDestination(s, ipvs.Destination{Addr: dests[2].Addr(), Port: 80, Weight: 0}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Connect(s.Key(), client); ok {
		t.Error("a connection was scheduled with every weight 0")
	}
}

func TestFakeLinks(t *testing.T) {
	eth := netip.MustParseAddr("192.168.0.1")
	l := ipvstesting.NewFakeLinks(map[string][]netip.Addr{"eth0": {eth}})
	if _, err := l.Addrs(ipvs.DummyInterface, proxy.IPv4); !errors.Is(err, ipvs.ErrNoSuchLink) {
		t.Errorf("missing dummy: %v", err)
	}
	if err := l.EnsureDummy("eth0"); err == nil {
		t.Error("EnsureDummy took a non-dummy interface")
	}
	vip := netip.MustParseAddr("10.96.0.10")
	for _, step := range []func() error{
		func() error { return l.EnsureDummy(ipvs.DummyInterface) },
		func() error { return l.EnsureDummy(ipvs.DummyInterface) },
		func() error { return l.AddAddr(ipvs.DummyInterface, vip) },
		func() error { return l.AddAddr(ipvs.DummyInterface, vip) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	local, err := l.LocalAddrs(proxy.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	want := []ipvs.LocalAddr{
		{Addr: netip.MustParseAddr("127.0.0.1"), Link: "lo", Loopback: true},
		{Addr: eth, Link: "eth0"},
		{Addr: vip, Link: ipvs.DummyInterface},
	}
	if diff := cmp.Diff(want, local, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("LocalAddrs (-want +got):\n%s", diff)
	}
	if err := l.DelAddr(ipvs.DummyInterface, vip); err != nil {
		t.Fatal(err)
	}
	if got := l.LinkAddrs(ipvs.DummyInterface); len(got) != 0 {
		t.Errorf("addresses left: %v", got)
	}
}
