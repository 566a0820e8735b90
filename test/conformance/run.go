package conformance

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/berthnode/berth/test/testbed"
)

// Suite is the upstream e2e suite and what drives it.
type Suite struct {
	// E2ETest is the e2e.test binary of k8s.io/kubernetes/test/e2e.
	E2ETest string
	// Ginkgo is the ginkgo CLI of the version e2e.test was built with.
	Ginkgo string
	// Kubectl is a kubectl of the suite's version (the [sig-cli] specs run
	// it).
	Kubectl string
	// Procs is the number of ginkgo processes for the parallel specs.
	Procs int
	// Timeout bounds each of the two ginkgo runs.
	Timeout time.Duration
}

// ListSpecs lists every spec of the suite with a ginkgo dry run, in a
// network namespace of its own (nothing is contacted), and reads the JSON
// report it writes into dir.
func (s Suite) ListSpecs(ctx context.Context, dir string) ([]Spec, error) {
	report := filepath.Join(dir, "specs.json")
	cmd := exec.CommandContext(ctx, "unshare", "--net", "--", s.E2ETest,
		"--ginkgo.dry-run", "--ginkgo.no-color", "--ginkgo.silence-skips",
		"--ginkgo.json-report="+report, "--provider=skeleton")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("list the suite's specs: %w: %s", err, lastLines(out, 20))
	}
	return ReadSpecs(report)
}

// Run runs the given specs with ginkgo inside the bed's LAN namespace, with
// procs processes, writing the JUnit report into reportDir and ginkgo's
// output to out and to reportDir/ginkgo.log. A failing spec is not an error
// here: the caller reads the report. An error means the run did not happen
// or was cut short.
func (s Suite) Run(ctx context.Context, tb *testbed.Testbed, specs []Spec, procs int, reportDir string, out io.Writer) error {
	if len(specs) == 0 {
		return nil
	}
	if err := os.MkdirAll(reportDir, 0o755); err != nil {
		return fmt.Errorf("report folder: %w", err)
	}
	kubeconfig, err := tb.HostPath(testbed.ControlPlaneHost, testbed.AdminKubeconfig)
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(reportDir, "ginkgo.log"))
	if err != nil {
		return fmt.Errorf("ginkgo log: %w", err)
	}
	defer logFile.Close()
	args := []string{s.Ginkgo,
		"--procs=" + strconv.Itoa(procs),
		"--timeout=" + s.Timeout.String(),
		"--no-color", "--silence-skips", "--poll-progress-after=5m",
		"--focus=" + FocusRegexp(specs),
		s.E2ETest, "--",
		// admin.conf names the apiserver by its advertise address (a
		// spec skips itself on 127.0.0.1).
		"--kubeconfig=" + kubeconfig,
		"--kubectl-path=" + s.Kubectl,
		"--provider=skeleton",
		"--report-dir=" + reportDir,
		"--e2e-output-dir=" + reportDir,
	}
	cmd := tb.Command(ctx, testbed.LANHost, args...)
	cmd.Dir = reportDir
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "KUBECONFIG=" + kubeconfig}
	cmd.Stdout = io.MultiWriter(logFile, out)
	cmd.Stderr = cmd.Stdout
	// ginkgo exits 1 when a spec fails; the JUnit report says which.
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok || ctx.Err() != nil {
			return fmt.Errorf("run ginkgo: %w", err)
		}
	}
	return nil
}

// lastLines returns at most the last n lines of out.
func lastLines(out []byte, n int) string {
	end := len(out)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] == '\n' && i != len(out)-1 {
			n--
			if n == 0 {
				return string(out[i+1 : end])
			}
		}
	}
	return string(out)
}
