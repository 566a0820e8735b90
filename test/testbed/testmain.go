package testbed

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// upTimeout bounds bringing a bed up once the binaries are built.
const upTimeout = 10 * time.Minute

// Options shape the bed of an end-to-end test package.
type Options struct {
	// Nodes is the number of node hosts.
	Nodes int
	// SandboxImage, if set, is the sandbox image the nodes' containerd is
	// configured with instead of the bed's pause image, which is then not
	// imported: the node agent must provide it (berth imports its embedded
	// pause image), as on an air-gapped node.
	SandboxImage string
	// Setup, if set, runs once the bed is up and before the tests (e.g.
	// install berth and join the nodes). Its failure fails the package.
	Setup func(ctx context.Context, tb *Testbed) error
	// Benchmarks tells that the package has benchmarks. A package without
	// them brings no bed up when -run selects no test (`make bench` runs
	// `go test -run '^$' -bench . ./...`): it would run nothing on it.
	Benchmarks bool
}

// RunTests is the TestMain of an end-to-end test package: it brings up a
// bed as opts say, stores it in *bed, runs the tests, and takes the bed
// down. As non-root it runs the tests with *bed nil, and Require skips them
// with the reason. When tests fail, the logs are kept and their folder
// printed.
func RunTests(m *testing.M, opts Options, bed **Testbed) int {
	flag.Parse()
	if os.Geteuid() != 0 || (!opts.Benchmarks && runsNoTests()) {
		return m.Run()
	}
	ctx := context.Background()
	name := fmt.Sprintf("t%d", os.Getpid())
	cfg, err := DefaultConfig(ctx, name, opts.Nodes)
	if err != nil {
		fmt.Fprintf(os.Stderr, "test bed: %v\n", err)
		return 1
	}
	cfg.Owned = true
	if opts.SandboxImage != "" {
		cfg.SandboxImage = opts.SandboxImage
		cfg.Images = slices.DeleteFunc(cfg.Images, func(path string) bool { return filepath.Base(path) == "pause.tar" })
	}
	upCtx, cancel := context.WithTimeout(ctx, upTimeout)
	tb, err := Up(upCtx, cfg)
	if err == nil && opts.Setup != nil {
		err = opts.Setup(upCtx, tb)
	}
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

// runsNoTests tells whether the test binary's -run pattern is `^$`, the
// usual way of running benchmarks alone.
func runsNoTests() bool {
	f := flag.Lookup("test.run")
	return f != nil && f.Value.String() == "^$"
}
