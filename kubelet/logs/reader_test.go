package logs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	critesting "github.com/berthnode/berth/cri/testing"
	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// newTestReader returns a following reader of path that writes to w.
func newTestReader(path string, rt *critesting.Runtime, id string, w io.Writer) *reader {
	opts := readOptions{follow: true, tail: -1, limit: -1, stdout: true, stderr: true}
	out := newOutput(w, opts)
	r := &reader{
		src: source{path: path, running: func(ctx context.Context) (bool, error) {
			return containerRunning(ctx, rt, id)
		}},
		opts:     opts,
		out:      out,
		asm:      &assembler{out: out},
		flush:    func() {},
		clock:    clock.RealClock{},
		interval: time.Millisecond,
		log:      klog.Background(),
	}
	return r
}

// switchEnv is what a switch case can do to a log being read.
type switchEnv struct {
	path    string
	old     func(n int) // writes line n to the open (old) file
	rotate  func()      // renames the file and creates an empty one
	current func(n int) // writes line n to the file at the path
}

// switchCase is a moment a rotation falls between, and what the reader
// must read then.
type switchCase struct {
	name string
	// afterFirstFlush runs once the first lines were read and flushed.
	afterFirstFlush func(e switchEnv)
	// firstStatus runs when the reader first asks whether the container
	// runs; the container exits after it.
	firstStatus func(e switchEnv)
	want        string
}

func switchCases(t *testing.T) []switchCase {
	return []switchCase{
		{
			name: "lines written to the old file before the new file's first",
			afterFirstFlush: func(e switchEnv) {
				e.old(3)
				e.rotate()
				e.current(4)
			},
			want: "1\n2\n3\n4\n",
		},
		{
			name: "the new file exists but the runtime still writes the old one",
			afterFirstFlush: func(e switchEnv) {
				e.rotate()
			},
			firstStatus: func(e switchEnv) {
				e.old(3)
				e.current(4)
			},
			want: "1\n2\n3\n4\n",
		},
		{
			name: "the path is missing for a moment",
			afterFirstFlush: func(e switchEnv) {
				if err := os.Rename(e.path, e.path+".20240102-150000"); err != nil {
					t.Fatal(err)
				}
				e.old(3)
			},
			firstStatus: func(e switchEnv) {
				e.old(4)
				e.current(5)
			},
			want: "1\n2\n3\n4\n5\n",
		},
	}
}

// TestSwitchFiles drives the moments a rotation can fall between: the
// reader must read the old file to its end, and must not move to the new
// file while it is empty (the runtime may still write to the old one).
func TestSwitchFiles(t *testing.T) {
	for _, tt := range switchCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "0.log")
			old, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			line := func(f *os.File, n int) {
				if _, err := fmt.Fprintf(f, "2024-01-02T15:00:00Z stdout F %d\n", n); err != nil {
					t.Fatal(err)
				}
			}
			e := switchEnv{
				path: path,
				old:  func(n int) { line(old, n) },
				rotate: func() {
					if err := os.Rename(path, path+".20240102-150000"); err != nil {
						t.Fatal(err)
					}
					mustWrite(t, path, "")
				},
				current: func(n int) {
					f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					line(f, n)
				},
			}
			e.old(1)
			e.old(2)
			var buf bytes.Buffer
			r := newTestReader(path, nil, "", &buf)
			flushes := 0
			r.flush = func() {
				if flushes++; flushes == 1 && tt.afterFirstFlush != nil {
					tt.afterFirstFlush(e)
				}
			}
			statuses := 0
			r.src.running = func(context.Context) (bool, error) {
				if statuses++; statuses == 1 && tt.firstStatus != nil {
					tt.firstStatus(e)
					return true, nil
				}
				return false, nil
			}
			lf, err := r.open()
			if err != nil {
				t.Fatal(err)
			}
			if err := r.run(context.Background(), lf); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, buf.String()); diff != "" {
				t.Errorf("read (-want +got):\n%s", diff)
			}
		})
	}
}
