package foundation

import (
	"os"
	"strings"
	"testing"

	"github.com/berthnode/berth/test/testbed"
)

// TestLAN checks that the nodes reach each other on the LAN and reach the
// apiserver on its LAN address, all from inside their own namespaces.
func TestLAN(t *testing.T) {
	testbed.Require(t, bed)
	ctx := t.Context()
	nodes := bed.Nodes()
	if len(nodes) != 2 {
		t.Fatalf("bed has %d nodes, want 2", len(nodes))
	}
	for i, from := range nodes {
		to := nodes[1-i]
		out, err := bed.Output(ctx, from.Name, "busybox", "ping", "-c", "1", "-W", "5", to.IP)
		if err != nil {
			t.Errorf("%s cannot ping %s (%s): %v\n%s", from.Name, to.Name, to.IP, err, out)
		}
		host, err := bed.Output(ctx, from.Name, "hostname")
		if err != nil || strings.TrimSpace(string(host)) != from.Name {
			t.Errorf("hostname on %s = %q, %v", from.Name, host, err)
		}
	}

	// A node that can verify the apiserver's certificate and reach its
	// address gets "ok", authenticated with the bootstrap token as
	// `kubeadm join` will be.
	ca, err := os.ReadFile(mustHostPath(t, testbed.ControlPlaneHost, "/etc/kubernetes/pki/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := os.WriteFile(mustHostPath(t, n.Name, "/run/berth/ca.crt"), ca, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := bed.Output(ctx, n.Name, bed.UpstreamBinary("kubectl"),
			"--server=https://"+bed.ControlPlaneEndpoint(), "--certificate-authority=/run/berth/ca.crt", "--token="+bed.Token(),
			"get", "--raw=/readyz")
		if err != nil || string(out) != "ok" {
			t.Errorf("%s: GET https://%s/readyz = %q, %v", n.Name, bed.ControlPlaneEndpoint(), out, err)
		}
	}
}

// TestHostsAreSeparate checks that each node sees its own files at the
// fixed paths a worker uses, and that they are not the outside's.
func TestHostsAreSeparate(t *testing.T) {
	testbed.Require(t, bed)
	ctx := t.Context()
	for _, n := range bed.Nodes() {
		marker := mustHostPath(t, n.Name, "/etc/kubernetes/owner")
		if err := os.WriteFile(marker, []byte(n.Name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range bed.Nodes() {
		out, err := bed.Output(ctx, n.Name, "cat", "/etc/kubernetes/owner", "/etc/hostname")
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		if want := n.Name + n.Name + "\n"; string(out) != want {
			t.Errorf("%s sees %q in /etc/kubernetes/owner and /etc/hostname, want %q", n.Name, out, want)
		}
		// /etc is an overlay: a write on the node stays on the node.
		if _, err := bed.Output(ctx, n.Name, "touch", "/etc/berth-written-on-"+n.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat("/etc/berth-written-on-" + n.Name); err == nil {
			t.Errorf("a file %s wrote to its /etc appeared outside", n.Name)
		}
	}
}

func mustHostPath(t *testing.T, host, p string) string {
	t.Helper()
	out, err := bed.HostPath(host, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNameLookupsStayInside checks that a host's resolver is the LAN
// gateway, where no DNS server listens: lookups fail fast and stay inside.
func TestNameLookupsStayInside(t *testing.T) {
	testbed.Require(t, bed)
	out, err := bed.Output(t.Context(), bed.Nodes()[0].Name, "cat", "/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "nameserver 192.168.200.1\n" {
		t.Errorf("resolv.conf on a node = %q, want only the LAN gateway", out)
	}
}
