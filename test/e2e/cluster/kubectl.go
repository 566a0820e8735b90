package cluster

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berthnode/berth/test/testbed"
)

// KubectlResult is what a finished kubectl gave.
type KubectlResult struct {
	Stdout, Stderr string
	// Code is kubectl's exit code.
	Code int
}

// KubectlWithInput runs the bed's kubectl with stdin and returns what it
// wrote and its exit code; it is killed after timeout. The test fails only
// when kubectl cannot be run at all: a kubectl that fails is a result.
func KubectlWithInput(t testing.TB, bed *testbed.Testbed, timeout time.Duration, stdin string, args ...string) KubectlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := bed.KubectlCommand(ctx, args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return KubectlResult{out.String(), errOut.String(), ee.ExitCode()}
	case err != nil:
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return KubectlResult{out.String(), errOut.String(), 0}
}
