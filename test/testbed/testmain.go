package testbed

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// upTimeout bounds bringing a bed up once the binaries are built.
const upTimeout = 10 * time.Minute

// RunTests is the TestMain of an end-to-end test package: it brings up a
// bed with the given number of nodes, stores it in *bed, runs the tests,
// and takes the bed down. As non-root it runs the tests with *bed nil, and
// Require skips them with the reason. When tests fail, the logs are kept
// and their folder printed.
func RunTests(m *testing.M, nodes int, bed **Testbed) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	ctx := context.Background()
	name := fmt.Sprintf("t%d", os.Getpid())
	cfg, err := DefaultConfig(ctx, name, nodes)
	if err != nil {
		fmt.Fprintf(os.Stderr, "test bed: %v\n", err)
		return 1
	}
	cfg.Owned = true
	upCtx, cancel := context.WithTimeout(ctx, upTimeout)
	tb, err := Up(upCtx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "test bed up: %v\n", err)
		if tb != nil {
			tb.KeepLogs()
			fmt.Fprintf(os.Stderr, "test bed logs: %s\n", tb.LogDir())
			if err := tb.Down(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "test bed down: %v\n", err)
			}
		}
		return 1
	}
	*bed = tb
	code := m.Run()
	if code != 0 {
		tb.KeepLogs()
		fmt.Fprintf(os.Stderr, "test bed logs (kept): %s\n", tb.LogDir())
	}
	if err := tb.Down(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "test bed down: %v\n", err)
		return 1
	}
	return code
}

// Require skips t when there is no bed, saying why.
func Require(t testing.TB, bed *Testbed) {
	t.Helper()
	if bed == nil {
		t.Skip("skipping: end-to-end tests need root to build the test bed (namespaces, mounts, cgroups); CI runs them as root")
	}
}
