package xtables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// endless writes lines until the writer fails, then reports how much it
// wrote: an input the binary never reads to its end.
type endless struct{ written int64 }

func (e *endless) WriteTo(w io.Writer) (int64, error) {
	line := []byte(strings.Repeat("x", 1023) + "\n")
	for {
		n, err := w.Write(line)
		e.written += int64(n)
		if err != nil {
			return e.written, err
		}
	}
}

// failing writes some input, then fails.
type failing struct{}

var errRender = errors.New("render failed")

func (failing) WriteTo(w io.Writer) (int64, error) {
	n, _ := w.Write([]byte("*nat\n"))
	return int64(n), errRender
}

// TestRunFromStreams runs real binaries on streamed inputs: the whole input
// arrives; a binary that stops reading and exits ends the run with its
// exit error instead of leaving the writer blocked; an input that fails
// halfway kills the binary and is the error.
func TestRunFromStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lines bytes.Buffer
	for i := range 50 {
		fmt.Fprintf(&lines, "-A BERTH-SVC-%02d -j BERTH-SEP-%02d\n", i, i)
	}
	nat := StreamedTable(TableNAT, &repeatable{lines.Bytes()})
	if !nat.Streamed() {
		t.Fatal("the nat table is not streamed")
	}
	want, err := nat.Bytes()
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "input")
	n, err := RunFrom(ctx, OSExec{}, nat, "sh", "-c", `cat > "$0"`, out)
	got, rerr := os.ReadFile(out)
	if err != nil || rerr != nil || n != int64(len(want)) || !bytes.Equal(got, want) {
		t.Errorf("RunFrom(cat) = %d, %v (read %v); the binary got %d bytes, want %d (equal: %t)", n, err, rerr, len(got), len(want), bytes.Equal(got, want))
	}

	// Not streamed (an Exec without RunFrom): the input is rendered first.
	n, err = RunFrom(ctx, plainExec{}, nat, "sh", "-c", `cat > "$0"`, out)
	if got, _ = os.ReadFile(out); err != nil || n != int64(len(want)) || !bytes.Equal(got, want) {
		t.Errorf("RunFrom(cat) with a plain Exec = %d, %v; the binary got %d bytes, want %d", n, err, len(got), len(want))
	}

	in := &endless{}
	_, err = RunFrom(ctx, OSExec{}, StreamedTable(TableNAT, in), "sh", "-c", "head -c 100000 >/dev/null; exit 3")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Errorf("RunFrom of a binary that exits 3 before the end of its input = %v, want its exit error", err)
	}
	if in.written < 100000 {
		t.Errorf("the binary read %d bytes before exiting, want at least 100000", in.written)
	}

	start := time.Now()
	_, err = RunFrom(ctx, OSExec{}, StreamedTable(TableNAT, failing{}), "sh", "-c", "cat >/dev/null; sleep 30")
	if !errors.Is(err, errRender) {
		t.Errorf("RunFrom of an input that fails = %v, want the input's error", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("RunFrom of an input that fails took %v: the binary was not killed", took)
	}
}

// repeatable writes the same bytes each time, as a streamed payload does.
type repeatable struct{ b []byte }

func (l *repeatable) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(l.b)
	return int64(n), err
}

// plainExec is OSExec without StreamExec.
type plainExec struct{}

func (plainExec) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	return OSExec{}.Run(ctx, stdin, name, args...)
}
