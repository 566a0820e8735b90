package sysctl

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEnsure(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"net/ipv4/ip_forward": "0\n", "net/bridge/bridge-nf-call-iptables": "1\n"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := Root(dir)
	changed, err := r.Ensure(map[string]string{"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"net.ipv4.ip_forward"}, changed); diff != "" {
		t.Errorf("changed (-want +got):\n%s", diff)
	}
	if v, _ := r.Get("net.ipv4.ip_forward"); v != "1" {
		t.Errorf("ip_forward = %q", v)
	}
	if _, err := r.Ensure(map[string]string{"net.nope": "1"}); err == nil {
		t.Error("missing parameter: no error")
	}
}
