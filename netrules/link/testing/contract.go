package testing

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthnode/berth/netrules/link"
)

// The networks a Subject's namespace must have on a link that is up, so
// that the suite's gateways (.2 and .3, ::2 and ::3) are directly connected.
const (
	// OnLinkIPv4 is the IPv4 address and prefix the subject's link carries.
	OnLinkIPv4 = "192.0.2.1/24"
	// OnLinkIPv6 is the IPv6 address and prefix the subject's link carries.
	OnLinkIPv6 = "2001:db8::1/64"
)

// Others is a second owner of routes in the table a link.Routes works on:
// what `ip route add ... proto static` is to the kernel. The suite uses it to
// prove that berth leaves routes it did not create alone.
type Others interface {
	// Add installs r as the other owner's route.
	Add(r link.Route) error
	// List returns the other owner's routes.
	List() ([]link.Route, error)
}

// Subject is one link.Routes implementation under the contract suite.
type Subject struct {
	// Routes is the implementation under test, holding no routes yet.
	Routes link.Routes
	// Others plants and lists routes of another owner in the same table.
	Others Others
}

// RunRoutesContract runs the behaviour every link.Routes must have against
// the implementation newSubject returns; each subtest gets a fresh one, whose
// network has OnLinkIPv4 and OnLinkIPv6 on a link that is up.
func RunRoutesContract(t *testing.T, newSubject func(t *testing.T) Subject) {
	cases := []struct {
		name string
		run  func(t *testing.T, s Subject)
	}{
		{"starts empty", testStartsEmpty},
		{"add lists both families", testAddLists},
		{"add is idempotent", testAddIdempotent},
		{"add replaces the gateway", testAddReplaces},
		{"delete", testDelete},
		{"invalid routes", testInvalid},
		{"foreign routes are left alone", testForeign},
		{"many routes", testMany},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newSubject(t))
		})
	}
}

func route(dst, gw string) link.Route {
	r := link.Route{Dst: netip.MustParsePrefix(dst)}
	if gw != "" {
		r.Gateway = netip.MustParseAddr(gw)
	}
	return r
}

// wantRoutes fails t unless list returns want, in any order.
func wantRoutes(t *testing.T, what string, list func() ([]link.Route, error), want []link.Route) {
	t.Helper()
	got, err := list()
	if err != nil {
		t.Fatalf("listing %s: %v", what, err)
	}
	opts := cmp.Options{cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{}), cmpopts.SortSlices(CompareRoutes), cmpopts.EquateEmpty()}
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Fatalf("%s (-want +got):\n%s", what, diff)
	}
}

func mustDo(t *testing.T, op string, f func(link.Route) error, routes ...link.Route) {
	t.Helper()
	for _, r := range routes {
		if err := f(r); err != nil {
			t.Fatalf("%s %s: %v", op, r, err)
		}
	}
}

func testStartsEmpty(t *testing.T, s Subject) {
	wantRoutes(t, "berth's routes", s.Routes.List, nil)
}

func testAddLists(t *testing.T, s Subject) {
	rs := []link.Route{route("10.244.1.0/24", "192.0.2.2"), route("fd00:10:244:1::/64", "2001:db8::2")}
	mustDo(t, "add", s.Routes.Add, rs...)
	wantRoutes(t, "berth's routes", s.Routes.List, rs)
}

func testAddIdempotent(t *testing.T, s Subject) {
	r := route("10.244.1.0/24", "192.0.2.2")
	mustDo(t, "add", s.Routes.Add, r, r, r)
	wantRoutes(t, "berth's routes", s.Routes.List, []link.Route{r})
}

func testAddReplaces(t *testing.T, s Subject) {
	mustDo(t, "add", s.Routes.Add, route("10.244.1.0/24", "192.0.2.2"), route("fd00:10:244:1::/64", "2001:db8::2"))
	moved := []link.Route{route("10.244.1.0/24", "192.0.2.3"), route("fd00:10:244:1::/64", "2001:db8::3")}
	mustDo(t, "add", s.Routes.Add, moved...)
	wantRoutes(t, "berth's routes", s.Routes.List, moved)
}

func testDelete(t *testing.T, s Subject) {
	a, b := route("10.244.1.0/24", "192.0.2.2"), route("10.244.2.0/24", "192.0.2.3")
	c := route("fd00:10:244:1::/64", "2001:db8::2")
	mustDo(t, "add", s.Routes.Add, a, b, c)

	mustDo(t, "delete", s.Routes.Delete, a, a) // the second time is a no-op
	wantRoutes(t, "after deleting "+a.String(), s.Routes.List, []link.Route{b, c})

	mustDo(t, "delete", s.Routes.Delete, route("10.244.2.0/24", "192.0.2.2"))
	wantRoutes(t, "after deleting with another gateway", s.Routes.List, []link.Route{b, c})

	mustDo(t, "delete", s.Routes.Delete, route("10.244.2.0/24", ""), route("fd00:10:244:1::/64", ""))
	wantRoutes(t, "after deleting with no gateway", s.Routes.List, nil)
}

func testInvalid(t *testing.T, s Subject) {
	v4 := netip.MustParseAddr("192.0.2.2")
	for _, r := range []link.Route{
		{Gateway: v4},
		{Dst: netip.MustParsePrefix("10.244.1.1/24"), Gateway: v4},
		{Dst: netip.MustParsePrefix("10.244.1.0/24")},
		{Dst: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("2001:db8::2")},
		{Dst: netip.MustParsePrefix("::ffff:10.244.1.0/120"), Gateway: v4},
		{Dst: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("::ffff:192.0.2.2")},
		{Dst: netip.MustParsePrefix("fd00::/64"), Gateway: netip.MustParseAddr("fe80::1%eth0")},
	} {
		if err := s.Routes.Add(r); !errors.Is(err, link.ErrInvalidRoute) {
			t.Errorf("Add(%#v) = %v, want %v", r, err, link.ErrInvalidRoute)
		}
	}
	bad := link.Route{Dst: netip.MustParsePrefix("10.244.1.1/24")}
	if err := s.Routes.Delete(bad); !errors.Is(err, link.ErrInvalidRoute) {
		t.Errorf("Delete(%#v) = %v, want %v", bad, err, link.ErrInvalidRoute)
	}
	wantRoutes(t, "berth's routes", s.Routes.List, nil)
}

func testForeign(t *testing.T, s Subject) {
	foreign := []link.Route{route("10.250.0.0/24", "192.0.2.3"), route("fd00:250::/64", "2001:db8::3")}
	mustDo(t, "add foreign", s.Others.Add, foreign...)
	own := route("10.244.1.0/24", "192.0.2.2")
	mustDo(t, "add", s.Routes.Add, own)
	wantRoutes(t, "berth's routes", s.Routes.List, []link.Route{own})

	// Neither a delete by exact match nor by destination reaches them.
	mustDo(t, "delete", s.Routes.Delete, foreign...)
	mustDo(t, "delete", s.Routes.Delete, route("10.250.0.0/24", ""), route("fd00:250::/64", ""))
	// Nor does an add to their destination, through any gateway.
	for _, r := range append(foreign, route("10.250.0.0/24", "192.0.2.2"), route("fd00:250::/64", "2001:db8::2")) {
		if err := s.Routes.Add(r); !errors.Is(err, link.ErrForeignRoute) {
			t.Errorf("Add(%s) over a foreign route = %v, want %v", r, err, link.ErrForeignRoute)
		}
	}
	wantRoutes(t, "foreign routes", s.Others.List, foreign)

	mustDo(t, "delete", s.Routes.Delete, own)
	wantRoutes(t, "berth's routes", s.Routes.List, nil)
	wantRoutes(t, "foreign routes", s.Others.List, foreign)
}

func testMany(t *testing.T, s Subject) {
	var rs []link.Route
	for i := range 200 {
		rs = append(rs,
			route(fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256), "192.0.2.2"),
			route(fmt.Sprintf("fd00:%x::/64", i+1), "2001:db8::2"))
	}
	mustDo(t, "add", s.Routes.Add, rs...)
	wantRoutes(t, "berth's routes", s.Routes.List, rs)
	mustDo(t, "delete", s.Routes.Delete, rs[:len(rs)/2]...)
	wantRoutes(t, "berth's routes after deleting half", s.Routes.List, rs[len(rs)/2:])
}
