package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/berthnode/berth/test/testbed"
)

// BenchmarkIdle measures each agent's CPU use (millicores over 30 s) and
// RSS with none of our pods on its node, then with 100 running, and the
// CPU of the node's containerd and shims meanwhile. Goals for berth with
// 100 pods: RSS ≤ 60 MiB, CPU ≤ 10 millicores.
func BenchmarkIdle(b *testing.B) {
	envs := newAgentEnvs(b, "bench-idle")
	ctx := b.Context()
	// Whatever an earlier benchmark left running settles first.
	if err := wait(ctx, 10*time.Second); err != nil {
		b.Fatal(err)
	}
	empty := make([]idleUse, len(envs))
	for i, env := range envs {
		var err error
		if empty[i], err = measureNodeIdle(ctx, env.agent); err != nil {
			b.Fatal(err)
		}
	}
	for _, env := range envs {
		names := podNames("idle", burstPods())
		if err := env.createPods(ctx, names, createWorkers); err != nil {
			b.Fatal(err)
		}
		if err := env.pods.waitReady(ctx, len(names)); err != nil {
			b.Fatal(err)
		}
	}
	// The last status updates of the bursts drain before the windows open.
	if err := wait(ctx, 15*time.Second); err != nil {
		b.Fatal(err)
	}
	full := make([]idleUse, len(envs))
	for i, env := range envs {
		var err error
		if full[i], err = measureNodeIdle(ctx, env.agent); err != nil {
			b.Fatal(err)
		}
		if full[i].podsOnNode, err = env.podsOnNode(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for _, env := range envs {
		if _, err := env.deleteAll(ctx); err != nil {
			b.Fatal(err)
		}
	}
	reportIdle(b, empty, full)
}

// idleUse is an agent's node at rest over idleWindow.
type idleUse struct {
	// mcores are each class's CPU use, in millicores.
	mcores map[string]float64
	// mem is the agent's memory at the end.
	mem testbed.ProcessStats
	// podsOnNode counts every pod on the node.
	podsOnNode int
}

// measureNodeIdle watches the agent's node for idleWindow.
func measureNodeIdle(ctx context.Context, ag agent) (idleUse, error) {
	u := idleUse{mcores: map[string]float64{}}
	before, err := sampleCPU(ag.node.Name)
	if err != nil {
		return u, err
	}
	start := time.Now()
	if err := wait(ctx, idleWindow); err != nil {
		return u, err
	}
	after, err := sampleCPU(ag.node.Name)
	if err != nil {
		return u, err
	}
	elapsed := time.Since(start).Seconds()
	for class, cpu := range after.cpuSince(before) {
		u.mcores[class] = 1000 * cpu.Seconds() / elapsed
	}
	u.mem, err = agentMemory(ag)
	return u, err
}

// reportIdle reports berth's and kubelet's idle use side by side.
func reportIdle(b *testing.B, empty, full []idleUse) {
	b.ReportMetric(0, "ns/op")
	var t strings.Builder
	w := tabwriter.NewWriter(&t, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "idle over %s\tberth\tkubelet\tratio\t\n", idleWindow)
	row := func(name, unit string, got, ref float64) {
		fmt.Fprintf(w, "%s\t%.1f %s\t%.1f %s\t%.2f\t\n", name, got, unit, ref, unit, ratio(got, ref))
		key := strings.NewReplacer(" ", "-", "+", "").Replace(name)
		b.ReportMetric(got, "berth-"+key+"-"+unit)
		b.ReportMetric(ref, "kubelet-"+key+"-"+unit)
	}
	for _, run := range []struct {
		label string
		use   []idleUse
	}{{"0 pods", empty}, {fmt.Sprintf("%d pods", burstPods()), full}} {
		berth, kubelet := run.use[0], run.use[1]
		row("agent CPU "+run.label, "mcores", berth.mcores[classAgent], kubelet.mcores[classAgent])
		row("agent RSS "+run.label, "MiB", mib(berth.mem.RSS), mib(kubelet.mem.RSS))
		row("agent anon RSS "+run.label, "MiB", mib(berth.mem.AnonRSS), mib(kubelet.mem.AnonRSS))
		row("containerd+CNI CPU "+run.label, "mcores", berth.mcores[classContainerd], kubelet.mcores[classContainerd])
		row("shims+runc CPU "+run.label, "mcores", berth.mcores[classShims], kubelet.mcores[classShims])
	}
	_ = w.Flush()
	printf("%s(pods on the nodes in all: berth's %d, kubelet's %d; goals for berth with 100 pods: RSS ≤ 60 MiB, CPU ≤ 10 mcores)\n",
		t.String(), full[0].podsOnNode, full[1].podsOnNode)
}
