package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

// Config is one `make conformance` run.
type Config struct {
	// Bed says what bed to bring up.
	Bed BedConfig
	// Suite is the e2e suite; its Kubectl is the bed's when empty.
	Suite Suite
	// Filter narrows the selection (FOCUS, SKIP).
	Filter Filter
	// ReportDir receives the spec list, the JUnit reports, ginkgo's output
	// and the bed's logs.
	ReportDir string
	// ListOnly prints the selection and stops before bringing a bed up.
	ListOnly bool
}

// Run lists and selects the specs, brings the bed up, runs the parallel
// specs and then the [Serial] ones, prints the summary and returns it. The
// bed is taken down at the end; its logs are copied into the report folder
// first.
func Run(ctx context.Context, cfg Config, out io.Writer) (summary Summary, err error) {
	if cfg.ListOnly {
		// A listing leaves no report folder behind.
		tmp, err := os.MkdirTemp("", "berth-conformance-list")
		if err != nil {
			return Summary{}, err
		}
		defer os.RemoveAll(tmp)
		cfg.ReportDir = tmp
	}
	if err := os.MkdirAll(cfg.ReportDir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("report folder: %w", err)
	}
	all, err := cfg.Suite.ListSpecs(ctx, cfg.ReportDir)
	if err != nil {
		return Summary{}, err
	}
	selection := Select(all, cfg.Filter)
	parallel, serial := Split(selection)
	printSelection(out, len(all), selection, len(serial))
	for text, reason := range LeftOut(all) {
		fmt.Fprintf(out, "left out, cannot pass on this bed: %s\n    %s\n", text, reason)
	}
	if cfg.ListOnly {
		for _, s := range selection {
			fmt.Fprintln(out, s.Text)
		}
		return Summary{}, nil
	}
	if len(selection) == 0 {
		return Summary{}, errors.New("no spec selected: check FOCUS and SKIP")
	}
	tb, err := UpBed(ctx, cfg.Bed, out)
	if tb != nil {
		defer func() {
			saveLogs(tb.LogDir(), filepath.Join(cfg.ReportDir, "bed-logs"), out)
			if derr := tb.Down(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, derr)
			}
		}()
	}
	if err != nil {
		return Summary{}, fmt.Errorf("bring up the test bed: %w", err)
	}
	suite := cfg.Suite
	if suite.Kubectl == "" {
		suite.Kubectl = tb.UpstreamBinary("kubectl")
	}
	start := time.Now()
	fmt.Fprintf(out, "running %d parallel specs with %d ginkgo processes\n", len(parallel), suite.Procs)
	runErr := suite.Run(ctx, tb, parallel, suite.Procs, filepath.Join(cfg.ReportDir, "parallel"), out)
	if runErr == nil {
		fmt.Fprintf(out, "running %d [Serial] specs alone (%s so far)\n", len(serial), time.Since(start).Round(time.Second))
		runErr = suite.Run(ctx, tb, serial, 1, filepath.Join(cfg.ReportDir, "serial"), out)
	}
	results, err := ReadJUnit(cfg.ReportDir)
	if err != nil {
		return Summary{}, errors.Join(runErr, err)
	}
	summary = Summarize(selection, results)
	fmt.Fprintf(out, "\nagent %s: %d specs in %s\n", cfg.Bed.Agent, len(selection), time.Since(start).Round(time.Second))
	summary.Print(out)
	fmt.Fprintf(out, "\nJUnit reports, ginkgo output and the bed's logs: %s\n", cfg.ReportDir)
	return summary, runErr
}

// printSelection prints the size of the selection per SIG.
func printSelection(out io.Writer, total int, selection []Spec, serial int) {
	bySig := map[string]int{}
	for _, s := range selection {
		bySig[s.Sig()]++
	}
	sigs := make([]string, 0, len(bySig))
	for sig := range bySig {
		sigs = append(sigs, sig)
	}
	sort.Strings(sigs)
	fmt.Fprintf(out, "selected %d of the suite's %d specs (%d [Serial]):", len(selection), total, serial)
	for _, sig := range sigs {
		fmt.Fprintf(out, " %s %d", sig, bySig[sig])
	}
	fmt.Fprintln(out)
}

// saveLogs copies the bed's logs into the report folder.
func saveLogs(from, to string, out io.Writer) {
	if b, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		fmt.Fprintf(out, "copy the bed's logs: %v: %s\n", err, b)
	}
}
