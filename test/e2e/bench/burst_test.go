package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/berthnode/berth/test/testbed"
)

// BenchmarkPodBurst100 starts 100 pods at once on berth's node and on
// kubelet's, bursts() times each, interleaved, and reports the medians:
// all Ready, p50 and first pod creation→Ready, the CPU of every process on
// the node and of the apiserver, the agent's peak RSS, and per pod the CRI
// calls and API requests each agent made. On berth's node it first starts
// the same pods straight through CRI with the best of a few parallelisms:
// the floor under any agent.
//
// Goals: all Ready ≤ 0.8× kubelet's and ≤ 1.2× the floor; berth's own CPU ≤
// 0.5× kubelet's; containerd's CPU ≤ kubelet's run's; apiserver CPU ≤
// kubelet + kube-proxy's.
func BenchmarkPodBurst100(b *testing.B) {
	envs := newAgentEnvs(b, "bench-burst")
	ctx := b.Context()
	floor, err := envs[0].bestFloor(b)
	if err != nil {
		b.Fatal(err)
	}
	runs := make([][]burstResult, len(envs))
	for round := range bursts() {
		for i, env := range envs {
			r, err := env.burst(ctx, round)
			if err != nil {
				b.Fatalf("%s, burst %d: %v", env.agent.name, round+1, err)
			}
			runs[i] = append(runs[i], r)
			b.Logf("%s burst %d: all Ready %s, p50 %s, first %s; CPU %s",
				env.agent.name, round+1, round2(r.total), round2(r.p50), round2(r.first), cpuLine(r.cpu))
			if _, err := env.deleteAll(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	berth, kubelet := summarize(runs[0]), summarize(runs[1])
	reportBurst(b, berth, kubelet, floor)
}

// burstResult is what one burst measures of one agent.
type burstResult struct {
	// total runs from the first Create call to the last pod Ready; p50
	// and first are the median and the least creation→Ready of a pod.
	total, p50, first time.Duration
	// peakRSS is the agent's highest RSS sampled during the burst.
	peakRSS uint64
	// cpu is the CPU time of each process class until all were Ready.
	cpu map[string]time.Duration
	// counts are the agent's CRI calls and API requests until settle
	// after all were Ready.
	counts workCounts
	// pods is the burst's size (the bursts' in all, summarized).
	pods int
}

// settle is how long after the last pod is Ready a burst's calls and
// requests are still counted: the status updates that trail it.
const settle = 5 * time.Second

// burst creates burstPods pods at once and waits until all are Ready,
// measuring the node's processes and the apiserver meanwhile.
func (e *benchEnv) burst(ctx context.Context, round int) (burstResult, error) {
	r := burstResult{pods: burstPods()}
	if _, err := testbed.WaitIdle(ctx, idleBusy, idleTimeout); err != nil {
		return r, err
	}
	count, err := e.startCounting(ctx)
	if err != nil {
		return r, err
	}
	cpu0, err := sampleCPU(e.agent.node.Name)
	if err != nil {
		return r, err
	}
	rss := sampleAgentRSS(ctx, e.agent, 100*time.Millisecond)
	start := time.Now()
	if err := e.createPods(ctx, podNames(fmt.Sprintf("burst%d", round), r.pods), createWorkers); err != nil {
		return r, err
	}
	if err := e.pods.waitReady(ctx, r.pods); err != nil {
		return r, err
	}
	r.total = e.pods.lastReady().Sub(start)
	cpu1, err := sampleCPU(e.agent.node.Name)
	if err != nil {
		return r, err
	}
	r.cpu = cpu1.cpuSince(cpu0)
	r.peakRSS = rss()
	lat := e.pods.latencies()
	r.p50, r.first = percentile(lat, 50), lat[0]
	if err := wait(ctx, settle); err != nil {
		return r, err
	}
	r.counts, err = count.stop(ctx)
	return r, err
}

// summarize returns the medians of an agent's bursts, with their counts
// and pods summed.
func summarize(runs []burstResult) burstResult {
	s := burstResult{cpu: map[string]time.Duration{}}
	pick := func(f func(r burstResult) time.Duration) time.Duration {
		var ds []time.Duration
		for _, r := range runs {
			ds = append(ds, f(r))
		}
		return percentile(ds, 50)
	}
	s.total = pick(func(r burstResult) time.Duration { return r.total })
	s.p50 = pick(func(r burstResult) time.Duration { return r.p50 })
	s.first = pick(func(r burstResult) time.Duration { return r.first })
	for _, c := range classes {
		s.cpu[c] = pick(func(r burstResult) time.Duration { return r.cpu[c] })
	}
	var rss []uint64
	for _, r := range runs {
		rss = append(rss, r.peakRSS)
		s.counts.add(r.counts)
		s.pods += r.pods
	}
	slices.Sort(rss)
	s.peakRSS = rss[(len(rss)-1)/2]
	return s
}

// reportBurst reports the medians, the ratios berth/kubelet and the
// per-pod counts.
func reportBurst(b *testing.B, berth, kubelet burstResult, floor floorRun) {
	b.ReportMetric(0, "ns/op")
	var t strings.Builder
	w := tabwriter.NewWriter(&t, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "burst of %d pods, median of %d\tberth\tkubelet\tratio\t\n", burstPods(), bursts())
	row := func(name, unit string, got, ref float64) {
		fmt.Fprintf(w, "%s\t%.2f %s\t%.2f %s\t%.2f\t\n", name, got, unit, ref, unit, ratio(got, ref))
		key := strings.NewReplacer(" ", "-", "+", "", "→", "-").Replace(name)
		b.ReportMetric(got, "berth-"+key+"-"+unit)
		b.ReportMetric(ref, "kubelet-"+key+"-"+unit)
	}
	row("all Ready", "s", berth.total.Seconds(), kubelet.total.Seconds())
	row("p50 pod→Ready", "s", berth.p50.Seconds(), kubelet.p50.Seconds())
	row("first pod Ready", "s", berth.first.Seconds(), kubelet.first.Seconds())
	for _, c := range classes {
		row(c+" CPU", "s", berth.cpu[c].Seconds(), kubelet.cpu[c].Seconds())
	}
	row("agent peak RSS", "MiB", mib(berth.peakRSS), mib(kubelet.peakRSS))
	_ = w.Flush()
	printf("%s", t.String())
	printf("CRI floor on berth's node, %d workers: all running in %s (berth %.2f×, goal ≤ 1.2×); machine CPU %.1f s on %d CPUs\n",
		floor.workers, round2(floor.total), ratio(berth.total.Seconds(), floor.total.Seconds()), floor.machineCPU.Seconds(), runtime.NumCPU())

	b.ReportMetric(floor.total.Seconds(), "floor-s")
	names := []string{"berth", "kubelet"}
	printf("per pod, over the %d bursts from the first Create to %s after the last pod Ready:\n", bursts(), settle)
	printf("%s", countsTable("CRI calls (agent's kubelet_runtime_operations_total)", 1, names,
		[]map[string]float64{perPod(berth.counts.agentCRI, berth.pods), perPod(kubelet.counts.agentCRI, kubelet.pods)}))
	printf("%s", countsTable("CRI calls (containerd's gRPC server)", 1, names,
		[]map[string]float64{perPod(berth.counts.containerd, berth.pods), perPod(kubelet.counts.containerd, kubelet.pods)}))
	printf("%s", countsTable("API requests (audit log)", 1, names,
		[]map[string]float64{perPod(berth.counts.api, berth.pods), perPod(kubelet.counts.api, kubelet.pods)}))
}

func perPod(m map[string]float64, pods int) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		out[k] = v / float64(pods)
	}
	return out
}

func cpuLine(cpu map[string]time.Duration) string {
	var parts []string
	for _, c := range classes {
		parts = append(parts, fmt.Sprintf("%s %.1f s", c, cpu[c].Seconds()))
	}
	return strings.Join(parts, ", ")
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
