package link

import (
	"errors"
	"net/netip"
	"testing"
)

func TestRouteString(t *testing.T) {
	r := Route{Dst: netip.MustParsePrefix("fd00:10:244:1::/64"), Gateway: netip.MustParseAddr("2001:db8::2")}
	if got, want := r.String(), "fd00:10:244:1::/64 via 2001:db8::2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestRouteValidateDelete(t *testing.T) {
	cases := []struct {
		name  string
		route Route
		valid bool
	}{
		{"any gateway", Route{Dst: netip.MustParsePrefix("10.244.1.0/24")}, true},
		{"one gateway", Route{Dst: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("192.0.2.2")}, true},
		{"no destination", Route{Gateway: netip.MustParseAddr("192.0.2.2")}, false},
		{"mixed families", Route{Dst: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("2001:db8::2")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.route.ValidateDelete()
			if tc.valid != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidRoute)) {
				t.Errorf("ValidateDelete() = %v, want valid %v", err, tc.valid)
			}
		})
	}
}
