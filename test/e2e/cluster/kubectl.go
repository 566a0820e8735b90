package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
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

// KubectlSession is a kubectl that runs while the test talks to it through
// its stdin, as a person at a terminal would: an attached shell loses what
// it prints after its input ends (the runtime detaches the session's output
// when its stdin closes), so the input stays open until the output came.
type KubectlSession struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout lockedBuffer
	stderr lockedBuffer
	// kill ends kubectl; ended tells that it was waited for, with code
	// its exit code.
	kill  context.CancelFunc
	ended bool
	code  int
}

// StartKubectl starts the bed's kubectl with a stdin the test writes to;
// it is killed after timeout, or when the test ends.
func StartKubectl(t testing.TB, bed *testbed.Testbed, timeout time.Duration, args ...string) *KubectlSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	s := &KubectlSession{cmd: bed.KubectlCommand(ctx, args...), kill: cancel}
	stdin, err := s.cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s.stdin = stdin
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	// Once kubectl is killed, Wait does not wait on what else holds its
	// output open.
	s.cmd.WaitDelay = 5 * time.Second
	if err := s.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	// A test that failed midway does not wait for the timeout.
	t.Cleanup(func() {
		s.kill()
		s.Close()
	})
	return s
}

// Send writes input to kubectl's stdin.
func (s *KubectlSession) Send(t testing.TB, input string) {
	t.Helper()
	if _, err := io.WriteString(s.stdin, input); err != nil {
		t.Fatalf("write to kubectl: %v (stderr %q)", err, s.stderr.String())
	}
}

// WaitOutput waits until kubectl's stdout holds want.
func (s *KubectlSession) WaitOutput(t testing.TB, timeout time.Duration, want string) {
	t.Helper()
	Poll(t, timeout, fmt.Sprintf("kubectl output %q", want), func() (bool, string) {
		out := s.stdout.String()
		return strings.Contains(out, want), fmt.Sprintf("stdout %q, stderr %q", out, s.stderr.String())
	})
}

// Close closes kubectl's stdin, waits for it to end and returns what it
// gave; a second Close returns the same.
func (s *KubectlSession) Close() KubectlResult {
	if !s.ended {
		_ = s.stdin.Close()
		err := s.cmd.Wait()
		s.kill()
		s.ended = true
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			s.code = ee.ExitCode()
		} else if err != nil {
			s.code = -1
		}
	}
	return KubectlResult{s.stdout.String(), s.stderr.String(), s.code}
}

// lockedBuffer is a bytes.Buffer that kubectl writes to while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
