package proxybench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/berthnode/berth/test/testbed"
)

// bed is the test bed the benchmarks share (nil as non-root, or when no
// benchmark was asked for).
var bed *testbed.Testbed

// startedAt is when the test binary started, to see how much of -timeout
// is left.
var startedAt = time.Now()

// Environment variables that shape a run (see the package documentation).
const (
	envSizes    = "BERTH_BENCH_SERVICES"
	envFlips    = "BERTH_BENCH_FLIPS"
	envIPTables = "BERTH_BENCH_IPTABLES"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Bringing up a bed takes minutes: only benchmarks need it, and `go
	// test ./...` runs this package's unit tests without -bench.
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	os.Exit(testbed.RunTests(m, testbed.Options{Nodes: 1, Setup: setup, Benchmarks: true}, &bed))
}

// setup makes the bed's node a berth node, with the legacy iptables first
// when the run asks for it.
func setup(ctx context.Context, tb *testbed.Testbed) error {
	switch mode := os.Getenv(envIPTables); mode {
	case "", "nft", "nf_tables":
	case "legacy":
		// The node's /etc and /var are overlays of its own: the
		// alternative is switched for the node only.
		for _, n := range tb.Nodes() {
			err := tb.Run(ctx, n.Name, "alternatives", "update-alternatives", "--set", "iptables", "/usr/sbin/iptables-legacy")
			if err != nil {
				return fmt.Errorf("switch %s to iptables-legacy: %w", n.Name, err)
			}
		}
	default:
		return fmt.Errorf("%s=%q: want nft or legacy", envIPTables, mode)
	}
	return tb.JoinNodes(ctx, io.Discard)
}
