package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"
)

// The benchmarks report one run's numbers (ns/op is suppressed: an "op"
// lasts minutes), so `-benchtime` and `-count` add nothing but more runs.
const (
	// startupSamples is how many pods BenchmarkPodStartup times, one at
	// a time; it reports the median.
	startupSamples = 5
	// createWorkers is how many goroutines create a burst's pods.
	createWorkers = 8
	// idleWindow is how long BenchmarkIdle watches an agent's CPU use.
	idleWindow = 30 * time.Second
	// readyTimeout bounds a burst's start and its removal.
	readyTimeout = 5 * time.Minute
	// Before each timed start of pods, an agent's or the floor's, the
	// machine settles until at most idleBusy of its CPU time is used, for
	// up to idleTimeout: the removal of the pods before leaves the kernel
	// work for a while.
	idleBusy    = 0.15
	idleTimeout = 30 * time.Second
)

// burstPods is the size of a burst, below the node's 110 pods:
// $BERTH_BENCH_PODS, 100 unless set (fewer make a quick check while
// working on the benchmark).
func burstPods() int { return envInt("BERTH_BENCH_PODS", 100) }

// bursts is how many bursts BenchmarkPodBurst100 starts on each agent:
// $BERTH_BENCH_BURSTS, 5 unless set.
func bursts() int { return envInt("BERTH_BENCH_BURSTS", 5) }

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// busyShare is cpu as a percentage of what the machine's CPUs could do in
// wall.
func busyShare(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / (wall.Seconds() * float64(runtime.NumCPU()))
}

// wait waits d, or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// podNames returns n pod names: prefix-000 ...
func podNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// percentile returns the nearest-rank p-th percentile of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func rounds(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = round(d)
	}
	return out
}

func round2(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }

// printf prints a benchmark's report on stdout, where `go test -bench`
// prints its results: b.Log keeps only the first lines of a benchmark's
// log unless -v is given.
func printf(format string, args ...any) {
	fmt.Printf(format, args...)
}
