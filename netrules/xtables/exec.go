package xtables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Exec runs the iptables binaries (iptables, iptables-restore,
// iptables-save and their ip6tables, -nft and -legacy variants). OSExec runs
// them; netrules/iptables/testing has a fake that keeps a ruleset.
type Exec interface {
	// Run runs the binary name with args, feeding it stdin (nil for
	// none), and returns its standard output. A binary that exits with a
	// non-zero status gives an *ExitError.
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// StreamExec is an Exec that can also hand a binary's standard output to a
// writer, and take its standard input from a reader, as they come: for
// outputs and inputs too large to hold at once. RunTo and RunFrom use it
// when their Exec has it.
type StreamExec interface {
	// RunTo runs the binary name with args and no input, writing its
	// standard output to stdout. Errors are as Run's.
	RunTo(ctx context.Context, stdout io.Writer, name string, args ...string) error
	// RunFrom runs the binary name with args, reading its standard input
	// from stdin, and returns its standard output. Errors are as Run's.
	RunFrom(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error)
}

// RunTo runs the binary with e, its output going to stdout as it comes when
// e is a StreamExec, else at once when it exits.
func RunTo(ctx context.Context, e Exec, stdout io.Writer, name string, args ...string) error {
	if s, ok := e.(StreamExec); ok {
		return s.RunTo(ctx, stdout, name, args...)
	}
	out, err := e.Run(ctx, nil, name, args...)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// errInputUnread ends the writing of a streamed input that the binary
// stopped reading: it exited, and its error tells why.
var errInputUnread = errors.New("the binary stopped reading its input")

// RunFrom runs the binary with e, feeding it t's input: as it is rendered
// when t is streamed and e is a StreamExec, else at once. It returns the
// size of the input.
func RunFrom(ctx context.Context, e Exec, t TableData, name string, args ...string) (int64, error) {
	s, ok := e.(StreamExec)
	if !ok || !t.Streamed() {
		data, err := t.Bytes()
		if err != nil {
			return 0, err
		}
		_, err = e.Run(ctx, data, name, args...)
		return int64(len(data)), err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	type written struct {
		n   int64
		err error
	}
	done := make(chan written, 1)
	go func() {
		n, err := t.WriteTo(pw)
		if err != nil {
			// Kill the binary before it reads the end of an input cut
			// short (iptables-restore would refuse it anyway: no COMMIT).
			cancel()
		}
		pw.CloseWithError(err)
		done <- written{n, err}
	}()
	_, err := s.RunFrom(ctx, pr, name, args...)
	pr.CloseWithError(errInputUnread)
	w := <-done
	if w.err != nil && !errors.Is(w.err, errInputUnread) {
		return w.n, fmt.Errorf("writing the input of %s: %w", name, w.err)
	}
	return w.n, err
}

// ExitError is a binary that exited with a non-zero status.
type ExitError struct {
	// Command is the command line that ran.
	Command string
	// Code is the exit status.
	Code int
	// Stderr is what the binary wrote to its standard error.
	Stderr string
}

// Error renders the command, the status and the first line of stderr.
func (e *ExitError) Error() string {
	first, _, _ := strings.Cut(strings.TrimSpace(e.Stderr), "\n")
	return fmt.Sprintf("%s: exit status %d: %s", e.Command, e.Code, first)
}

// OSExec runs binaries from PATH.
type OSExec struct{}

// Run implements Exec.
func (e OSExec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	var stdout bytes.Buffer
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	if err := e.run(ctx, in, &stdout, name, args...); err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			return stdout.Bytes(), err
		}
		return nil, err
	}
	return stdout.Bytes(), nil
}

// RunTo implements StreamExec.
func (e OSExec) RunTo(ctx context.Context, stdout io.Writer, name string, args ...string) error {
	return e.run(ctx, nil, stdout, name, args...)
}

// RunFrom implements StreamExec.
func (e OSExec) RunFrom(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	var stdout bytes.Buffer
	err := e.run(ctx, stdin, &stdout, name, args...)
	return stdout.Bytes(), err
}

func (OSExec) run(ctx context.Context, stdin io.Reader, stdout io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{
			Command: strings.Join(append([]string{name}, args...), " "),
			Code:    ee.ExitCode(),
			Stderr:  stderr.String(),
		}
	}
	if err != nil {
		return fmt.Errorf("running %s: %w", name, err)
	}
	return nil
}
