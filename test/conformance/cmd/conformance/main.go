// Command conformance runs the upstream e2e suite's node-related selection
// (see package test/conformance) against a test bed; `make conformance`
// calls it. It exits 1 when a selected spec fails or does not run.
//
//	conformance --e2e-dir DIR --images DIR --coredns-manifest FILE [--agent berth|upstream]
//	            [--nodes N] [--procs N] [--focus RE] [--skip RE] [--report-root DIR] [--list]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/berthnode/berth/test/conformance"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parse(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "conformance: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	summary, err := conformance.Run(ctx, cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "conformance: %v\n", err)
		return 1
	}
	if cfg.ListOnly {
		return 0
	}
	if n := summary.Failed(); n > 0 {
		fmt.Fprintf(stderr, "conformance: %d selected specs failed\n", n)
		return 1
	}
	for _, c := range summary.BySig {
		if c.NotRun > 0 {
			fmt.Fprintln(stderr, "conformance: some selected specs did not run")
			return 1
		}
	}
	return 0
}

// parse turns the command line into a run's configuration.
func parse(args []string, stderr io.Writer) (conformance.Config, error) {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                  conformance.Config
		e2eDir, imagesDir    string
		focus, skip, reports string
	)
	fs.StringVar(&cfg.Bed.Agent, "agent", conformance.AgentBerth, "node agent: berth, or upstream (kubelet and kube-proxy)")
	fs.IntVar(&cfg.Bed.Nodes, "nodes", 1, "number of nodes")
	fs.StringVar(&e2eDir, "e2e-dir", "", "folder with e2e.test and ginkgo (and kubelet, kube-proxy for --agent upstream): test/tools/build-e2e.sh")
	fs.StringVar(&imagesDir, "images", "", "folder of docker-archive images (*.tar) to import into every node")
	fs.StringVar(&cfg.Bed.CoreDNSManifest, "coredns-manifest", "", "CoreDNS add-on manifest, its Service at the clusterDNS address")
	fs.IntVar(&cfg.Suite.Procs, "procs", 6, "ginkgo processes for the parallel specs")
	fs.DurationVar(&cfg.Suite.Timeout, "timeout", 3*time.Hour, "bound of each ginkgo run")
	fs.StringVar(&focus, "focus", "", "run only the selected specs whose text matches this regexp")
	fs.StringVar(&skip, "skip", "", "leave out the selected specs whose text matches this regexp")
	fs.StringVar(&reports, "report-root", "/var/tmp/berth-conformance", "folder of the run folders (reports, logs)")
	fs.BoolVar(&cfg.ListOnly, "list", false, "print the selection and exit")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if e2eDir == "" {
		return cfg, fmt.Errorf("--e2e-dir is required")
	}
	cfg.Suite.E2ETest = filepath.Join(e2eDir, "e2e.test")
	cfg.Suite.Ginkgo = filepath.Join(e2eDir, "ginkgo")
	cfg.Bed.BinDir = e2eDir
	var err error
	if cfg.Filter.Focus, err = optionalRegexp(focus); err != nil {
		return cfg, fmt.Errorf("--focus: %w", err)
	}
	if cfg.Filter.Skip, err = optionalRegexp(skip); err != nil {
		return cfg, fmt.Errorf("--skip: %w", err)
	}
	if !cfg.ListOnly {
		if imagesDir == "" || cfg.Bed.CoreDNSManifest == "" {
			return cfg, fmt.Errorf("--images and --coredns-manifest are required")
		}
		if cfg.Bed.Images, err = filepath.Glob(filepath.Join(imagesDir, "*.tar")); err != nil || len(cfg.Bed.Images) == 0 {
			return cfg, fmt.Errorf("--images %s: no *.tar images", imagesDir)
		}
	}
	cfg.ReportDir = filepath.Join(reports, fmt.Sprintf("%s-%s-%d", cfg.Bed.Agent, time.Now().Format("20060102-150405"), os.Getpid()))
	return cfg, nil
}

// optionalRegexp compiles s, or returns nil for "".
func optionalRegexp(s string) (*regexp.Regexp, error) {
	if s == "" {
		return nil, nil
	}
	return regexp.Compile(s)
}
