package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// BenchmarkPodStartup times one pod on an idle node, from the Create call
// to Ready as a watch sees it, against the same sandbox and container
// started through CRI. Goal: berth ≤ floor + 300 ms.
func BenchmarkPodStartup(b *testing.B) {
	env := newBenchEnv(b, berthAgent, "bench-startup")
	ctx := b.Context()
	var berth, floor []time.Duration
	for i := range startupSamples {
		name := fmt.Sprintf("startup-%d", i)
		if err := env.createPods(ctx, []string{name}, 1); err != nil {
			b.Fatal(err)
		}
		if err := env.pods.waitReady(ctx, 1); err != nil {
			b.Fatal(err)
		}
		berth = append(berth, env.pods.latencies()[0])
		if _, err := env.deleteAll(ctx); err != nil {
			b.Fatal(err)
		}
		d, err := env.floorPod(ctx, fmt.Sprintf("floor-startup-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		floor = append(floor, d)
		if err := env.removeFloor(context.WithoutCancel(ctx)); err != nil {
			b.Fatal(err)
		}
	}
	got, base := percentile(berth, 50), percentile(floor, 50)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(got), "berth-ms")
	b.ReportMetric(ms(base), "floor-ms")
	b.ReportMetric(ms(got-base), "overhead-ms")
	b.Logf("pod startup (median of %d): berth %s, CRI floor %s, overhead %s (goal ≤ 300ms); berth samples %v, floor samples %v",
		startupSamples, round(got), round(base), round(got-base), rounds(berth), rounds(floor))
}

// probeWindow is how long BenchmarkProbes100 watches berth.
const probeWindow = 2 * time.Minute

// BenchmarkProbes100 runs 100 pods with 3 probes each (http readiness and
// tcp liveness on an echo container, exec liveness on a busybox sidecar),
// every 10 s, and reports berth's CPU and RSS over 2 minutes. Goal: ≤ 5 % of
// a core and ≤ 80 MiB.
func BenchmarkProbes100(b *testing.B) {
	env := newBenchEnv(b, berthAgent, "bench-probes")
	ctx := b.Context()
	pid, err := bed.FindProcess(env.agent.node.Name, berthArgv0)
	if err != nil {
		b.Fatal(err)
	}
	names := podNames("probed", burstPods())
	err = env.createPodsWith(ctx, names, createWorkers, func(name string) *v1.Pod {
		return probedPod(name, env.agent.node.Name)
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := env.pods.waitReady(ctx, len(names)); err != nil {
		b.Fatal(err)
	}
	if err := wait(ctx, 15*time.Second); err != nil {
		b.Fatal(err)
	}
	use, err := testbed.MeasureProcess(ctx, pid, probeWindow)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := env.deleteAll(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(use.CPUPercent, "cpu-%")
	b.ReportMetric(mib(use.End.RSS), "rss-MiB")
	b.ReportMetric(mib(use.End.AnonRSS), "anon-MiB")
	b.Logf("berth with %d pods × 3 probes every 10s, over %s: %.2f%% of a core (goal ≤ 5%%), RSS %.1f MiB (%.1f anonymous; goal ≤ 80 MiB)",
		burstPods(), probeWindow, use.CPUPercent, mib(use.End.RSS), mib(use.End.AnonRSS))
}

// probedPod is an echo server probed over http and tcp, and a busybox
// sidecar probed by exec, all every 10 s.
func probedPod(name, node string) *v1.Pod {
	every := func(h v1.ProbeHandler) *v1.Probe {
		return &v1.Probe{ProbeHandler: h, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3}
	}
	pod := busyboxPod(name, node, "sleep 3600")
	pod.Spec.Containers[0].LivenessProbe = every(v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}})
	pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{
		Name:           "echo",
		Image:          images.EchoRef,
		ReadinessProbe: every(v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}),
		LivenessProbe:  every(v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(8080)}}),
	})
	return pod
}
