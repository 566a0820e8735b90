package service

import (
	"strings"
	"testing"

	"github.com/berthnode/berth/test/demo"
	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestDemo runs the steps `make demo` shows and checks what it tells the
// operator: 30 requests sent to the echo Service's cluster IP from node1's
// own network namespace are answered 10 by each of the 3 pods, the
// printed table says so, and `berth rules explain` shows the cluster IP
// and the pods taken in turn.
func TestDemo(t *testing.T) {
	testbed.Require(t, bed)
	ns := cluster.Namespace(t, cluster.AdminClient(t, bed))
	var out strings.Builder
	cfg := demo.Config{Bed: bed, Namespace: ns, Client: bed.Nodes()[0].Name, Requests: 30, Out: &out}
	t.Cleanup(func() { t.Logf("the demo printed:\n%s", out.String()) })
	if err := demo.Workload(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	res, err := demo.ServiceProxy(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Answers) != demo.Replicas {
		t.Errorf("answers from %d pods, want %d: %v", len(res.Answers), demo.Replicas, res.Answers)
	}
	for pod, n := range res.Answers {
		if n != 10 {
			t.Errorf("%d of 30 requests went to %s, want 10 each (round-robin): %v", n, pod, res.Answers)
		}
	}
	if want := "Round-robin: each new connection went to the next pod in turn, 10 of 30 to each pod."; !strings.Contains(out.String(), want) {
		t.Errorf("the demo does not print %q", want)
	}
	for _, want := range []string{res.ClusterIP + ":80", "cluster IP", "in turn"} {
		if !strings.Contains(res.Explain, want) {
			t.Errorf("berth rules explain %s/echo lacks %q:\n%s", ns, want, res.Explain)
		}
	}
}
