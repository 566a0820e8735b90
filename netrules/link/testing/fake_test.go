package testing

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/berthnode/berth/netrules/link"
)

func TestFakeContract(t *testing.T) {
	RunRoutesContract(t, func(*testing.T) Subject {
		f := NewFake()
		return Subject{Routes: f, Others: f.Others()}
	})
}

func TestFakeSetError(t *testing.T) {
	f := NewFake()
	r := link.Route{Dst: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("192.0.2.2")}
	boom := errors.New("boom")
	f.SetError(boom)
	if _, err := f.List(); !errors.Is(err, boom) {
		t.Errorf("List() = %v, want %v", err, boom)
	}
	if err := f.Add(r); !errors.Is(err, boom) {
		t.Errorf("Add() = %v, want %v", err, boom)
	}
	if err := f.Delete(r); !errors.Is(err, boom) {
		t.Errorf("Delete() = %v, want %v", err, boom)
	}
	f.SetError(nil)
	if err := f.Add(r); err != nil {
		t.Fatalf("Add() after clearing the error: %v", err)
	}
	wantRoutes(t, "routes", f.List, []link.Route{r})
}
