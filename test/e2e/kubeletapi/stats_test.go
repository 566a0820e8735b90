package kubeletapi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/berthnode/berth/test/e2e/cluster"
)

// TestStats: /stats/summary and /metrics/resource, read through the
// apiserver's node proxy as metrics-server and kubectl top do, report the
// node and the pods, and a pod that burns CPU shows much more CPU than an
// idle one.
func TestStats(t *testing.T) {
	client, ns := setUp(t)
	runPod(t, client, ns, busybox("burner", "while :; do :; done"))
	runPod(t, client, ns, busybox("idler", "exec sleep 1000000"))
	base := "/api/v1/nodes/" + nodeName() + "/proxy"
	var burn, idle *statsapi.PodStats
	var summary statsapi.Summary
	// Rates need two samples a second apart: poll.
	cluster.Poll(t, time.Minute, "CPU rates of both pods", func() (bool, string) {
		raw := kubectl(t, "get", "--raw", base+"/stats/summary")
		summary = statsapi.Summary{}
		if err := json.Unmarshal([]byte(raw), &summary); err != nil {
			return false, err.Error()
		}
		burn, idle = findPod(summary, ns, "burner"), findPod(summary, ns, "idler")
		n := summary.Node
		return cpuRate(burn) > 0 && cpuRate(idle) >= 0 && n.CPU != nil && n.CPU.UsageNanoCores != nil, head(raw, 300)
	})
	// A busy loop gets a good part of a core even on a loaded 2-core
	// machine; sleep gets nothing.
	if b, i := cpuRate(burn), cpuRate(idle); b < 200e6 || b < 20*i {
		t.Errorf("burner uses %d nanocores and idler %d: want burner ≥ 0.2 core and ≥ 20× idler", b, i)
	}
	n := summary.Node
	if n.NodeName != nodeName() || *n.CPU.UsageNanoCores < uint64(cpuRate(burn))/2 ||
		n.Memory == nil || n.Memory.WorkingSetBytes == nil || *n.Memory.WorkingSetBytes == 0 {
		t.Errorf("node %s: CPU %d nanocores, memory %s; want node %s, CPU at least half the burner's (%d), a working set",
			n.NodeName, *n.CPU.UsageNanoCores, dump(n.Memory), nodeName(), cpuRate(burn))
	}
	for _, p := range []*statsapi.PodStats{burn, idle} {
		if p.Memory == nil || p.Memory.WorkingSetBytes == nil || *p.Memory.WorkingSetBytes == 0 || len(p.Containers) != 1 || p.Containers[0].Name != "c" {
			t.Errorf("pod %s stats %+v: want a working set and container c", p.PodRef.Name, p)
		}
	}

	metrics := kubectl(t, "get", "--raw", base+"/metrics/resource")
	for _, want := range []struct {
		name, labels string
	}{
		{"node_cpu_usage_seconds_total", ""},
		{"node_memory_working_set_bytes", ""},
		{"container_cpu_usage_seconds_total", fmt.Sprintf(`container="c",namespace=%q,pod="burner"`, ns)},
		{"container_memory_working_set_bytes", fmt.Sprintf(`container="c",namespace=%q,pod="idler"`, ns)},
		{"pod_cpu_usage_seconds_total", fmt.Sprintf(`namespace=%q,pod="burner"`, ns)},
		{"pod_memory_working_set_bytes", fmt.Sprintf(`namespace=%q,pod="idler"`, ns)},
	} {
		re := regexp.MustCompile(`(?m)^` + want.name + `(\{` + regexp.QuoteMeta(want.labels) + `\})? ([0-9.e+]+)`)
		if want.labels == "" {
			re = regexp.MustCompile(`(?m)^` + want.name + ` ([0-9.e+]+)`)
		}
		m := re.FindStringSubmatch(metrics)
		if m == nil {
			t.Errorf("/metrics/resource has no %s{%s}:\n%s", want.name, want.labels, head(metrics, 2000))
			continue
		}
		if v, err := strconv.ParseFloat(m[len(m)-1], 64); err != nil || v <= 0 {
			t.Errorf("%s{%s} = %q, want a positive number", want.name, want.labels, m[len(m)-1])
		}
	}
}

// dump renders stats for a message.
func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func findPod(s statsapi.Summary, ns, name string) *statsapi.PodStats {
	for i := range s.Pods {
		if s.Pods[i].PodRef.Namespace == ns && s.Pods[i].PodRef.Name == name {
			return &s.Pods[i]
		}
	}
	return nil
}

// cpuRate is the pod's CPU use in nanocores; -1 when not reported.
func cpuRate(p *statsapi.PodStats) int64 {
	if p == nil || p.CPU == nil || p.CPU.UsageNanoCores == nil {
		return -1
	}
	return int64(*p.CPU.UsageNanoCores)
}
