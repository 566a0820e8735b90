package proxybench

import (
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/berthnode/berth/test/testbed"
)

// The benchmark reports one run's numbers (ns/op is suppressed: an "op"
// lasts minutes), so -benchtime and -count add nothing but more runs.
const (
	// defaultSizes are the sizes `make bench` runs.
	defaultSizes = "1000,5000"
	// defaultFlips is how many endpoint flips each size times.
	defaultFlips = 3
	// goalRatio is the most berth may take over the floor.
	goalRatio = 1.3
	// goalFlip10k is the most one flip may take at 10,000 services.
	goalFlip10k = 100 * time.Millisecond
	// goalRSS10k is the most memory berth may use at 10,000 services.
	goalRSS10k = 150 << 20
)

// BenchmarkServiceProxy measures berth's service proxy with each size of
// BERTH_BENCH_SERVICES against the floor of iptables-restore itself (see
// the package documentation). Goals: cold full sync ≤ 1.3 × its floor; one
// endpoint flip ≤ 1.3 × its floor and ≤ 100 ms at 10,000 services; RSS ≤
// 150 MiB at 10,000 services.
func BenchmarkServiceProxy(b *testing.B) {
	testbed.Require(b, bed)
	sizes, err := parseSizes(os.Getenv(envSizes))
	if err != nil {
		b.Fatal(err)
	}
	flips, err := parseCount(envFlips, os.Getenv(envFlips), defaultFlips)
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, flips)
	var results []*sizeResult
	for _, n := range sizes {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			if left, limited := timeLeft(); limited && left < estimate(n) {
				b.Skipf("skipping %d services: a run takes about %s and %s is left of -timeout; run with a longer -timeout (see the package documentation)",
					n, estimate(n).Round(time.Minute), left.Round(time.Minute))
			}
			r, err := e.runSize(b.Context(), n)
			if err != nil {
				b.Fatal(err)
			}
			r.report(b)
			results = append(results, r)
		})
	}
	if len(results) > 0 {
		// Straight to the output: testing prints what a benchmark with
		// sub-benchmarks logs only with -v.
		fmt.Printf("proxybench summary (berth on %s, %s; floors: bare iptables-restore in a fresh network namespace, flips once the built-in chains jump to berth's; × is berth over the floor of its backend)\n%s",
			e.node, e.iptablesMode, summary(results))
	}
}

// env is what the benchmark works with: the node berth runs on, a client
// without rate limits, berth's metrics and how berth's proxy is set up.
type env struct {
	client  kubernetes.Interface
	node    string
	view    proxyView
	metrics *metricsClient
	flips   int
	// iptablesMode is the node's iptables, as `iptables --version` says
	// it, and mode its backend's name in floorBackends.
	iptablesMode, mode string
}

func newEnv(b *testing.B, flips int) *env {
	b.Helper()
	client, err := bed.UnthrottledAdminClient()
	if err != nil {
		b.Fatal(err)
	}
	node := bed.Nodes()[0].Name
	e := &env{client: client, node: node, metrics: newMetricsClient(node), flips: flips}
	if e.view, err = loadProxyView(b.Context(), client, node); err != nil {
		b.Fatal(err)
	}
	out, err := bed.Output(b.Context(), node, "iptables", "--version")
	if err != nil {
		b.Fatal(err)
	}
	e.iptablesMode = strings.TrimSpace(string(out))
	e.mode = "nft"
	if strings.Contains(e.iptablesMode, "(legacy)") {
		e.mode = "legacy"
	}
	return e
}

// parseSizes reads BERTH_BENCH_SERVICES ("" for the default).
func parseSizes(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		s = defaultSizes
	}
	var sizes []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 40000 {
			return nil, fmt.Errorf("%s=%q: want service counts from 1 to 40000, comma-separated", envSizes, s)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// parseCount reads a positive count from an environment variable ("" for
// def).
func parseCount(name, s string, def int) (int, error) {
	if strings.TrimSpace(s) == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive count", name, s)
	}
	return n, nil
}

// timeLeft returns what is left of -test.timeout, and false when there is
// no timeout.
func timeLeft() (time.Duration, bool) {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return 0, false
	}
	getter, ok := f.Value.(flag.Getter)
	if !ok {
		return 0, false
	}
	d, ok := getter.Get().(time.Duration)
	if !ok || d <= 0 {
		return 0, false
	}
	return d - time.Since(startedAt), true
}

// fullSyncGuess is roughly how long one full sync of n services takes with
// nf_tables on the 2-core test machines, with some load (1.3 s at 1,000,
// 90 s to 110 s at 5,000, 12 minutes at 10,000: iptables-nft-restore
// grows with about n^2.75).
func fullSyncGuess(n int) time.Duration {
	return time.Duration(1.3 * math.Pow(float64(n)/1000, 2.75) * float64(time.Second))
}

// estimate is roughly how long a size takes: creating and deleting the
// objects twice, and three full syncs (the nft floor, berth's cold start
// and a periodic one); flips and the incremental syncs are partial.
func estimate(n int) time.Duration {
	return 2*time.Minute + time.Duration(n)*40*time.Millisecond + 3*fullSyncGuess(n)
}

// phaseTimeout bounds one phase of a size.
func phaseTimeout(n int) time.Duration {
	return 5*time.Minute + 4*fullSyncGuess(n)
}

// median returns the median of ds (the lower one of an even count).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[(len(s)-1)/2]
}

// progress tells whoever watches a long run where it is.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s proxybench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
