package bench

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/berthnode/berth/test/testbed"
)

// workCounts is what an agent asked of the others over a window: its CRI
// calls by kubelet's operation type (from its own
// kubelet_runtime_operations_total), the CRI calls node's containerd
// answered by method (from containerd's gRPC metrics: every client's,
// whatever the agent counts), and its API requests by verb and resource
// (from the apiserver's audit log; failed ones apart).
type workCounts struct {
	agentCRI, containerd, api map[string]float64
}

// add adds o to c.
func (c *workCounts) add(o workCounts) {
	for _, pair := range []struct {
		dst *map[string]float64
		src map[string]float64
	}{
		{&c.agentCRI, o.agentCRI}, {&c.containerd, o.containerd}, {&c.api, o.api},
	} {
		if *pair.dst == nil {
			*pair.dst = map[string]float64{}
		}
		for k, v := range pair.src {
			(*pair.dst)[k] += v
		}
	}
}

// counter takes the counts at the start of a window.
type counter struct {
	env        *benchEnv
	auditAt    int64
	agentCRI   map[string]float64
	containerd map[string]float64
}

// startCounting reads the counters at the start of a window.
func (e *benchEnv) startCounting(ctx context.Context) (*counter, error) {
	c := &counter{env: e}
	if fi, err := os.Stat(bed.AuditLog()); err == nil {
		c.auditAt = fi.Size()
	} else {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	var err error
	if c.agentCRI, err = e.agentOperations(ctx); err != nil {
		return nil, err
	}
	if c.containerd, err = bed.ContainerdCRICalls(ctx, e.agent.node.Name); err != nil {
		return nil, err
	}
	return c, nil
}

// stop returns the counts since the start of the window.
func (c *counter) stop(ctx context.Context) (workCounts, error) {
	var w workCounts
	agentCRI, err := c.env.agentOperations(ctx)
	if err != nil {
		return w, err
	}
	containerd, err := bed.ContainerdCRICalls(ctx, c.env.agent.node.Name)
	if err != nil {
		return w, err
	}
	w.agentCRI, w.containerd = minus(agentCRI, c.agentCRI), minus(containerd, c.containerd)
	events, _, err := testbed.ReadAuditEvents(bed.AuditLog(), c.auditAt)
	if err != nil {
		return w, err
	}
	w.api = map[string]float64{}
	for _, ev := range events {
		if !slices.Contains(c.env.agent.users, ev.User) {
			continue
		}
		key := ev.Verb + " " + ev.Resource
		if ev.Code >= 400 {
			key += fmt.Sprintf(" (%d)", ev.Code)
		}
		w.api[key]++
	}
	return w, nil
}

// agentOperations reads the agent's kubelet_runtime_operations_total from
// its /metrics, through the apiserver's node proxy as Prometheus does.
func (e *benchEnv) agentOperations(ctx context.Context) (map[string]float64, error) {
	text, err := e.client.CoreV1().RESTClient().Get().
		AbsPath("/api/v1/nodes", e.agent.node.Name, "proxy", "metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", e.agent.name, err)
	}
	return testbed.CounterByLabel(text, "kubelet_runtime_operations_total", "operation_type", nil)
}

func minus(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// countsTable renders counts per pod, one column per agent, one row per
// key of any of them, and the totals.
func countsTable(title string, pods float64, names []string, counts []map[string]float64) string {
	keys := map[string]bool{}
	for _, c := range counts {
		for k := range c {
			keys[k] = true
		}
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%s per pod\t%s\t\n", title, strings.Join(names, "\t"))
	totals := make([]float64, len(counts))
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		fmt.Fprintf(w, "%s\t", k)
		for i, c := range counts {
			fmt.Fprintf(w, "%.2f\t", c[k]/pods)
			totals[i] += c[k]
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "total\t")
	for _, t := range totals {
		fmt.Fprintf(w, "%.2f\t", t/pods)
	}
	fmt.Fprintln(w)
	_ = w.Flush()
	return b.String()
}
