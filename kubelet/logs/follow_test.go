package logs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	critesting "github.com/berthnode/berth/cri/testing"
)

// fakeWriter writes a container's log the way the runtime does: to the file
// it has open, switching to a new file at the path only when the log is
// reopened.
type fakeWriter struct {
	path string

	mu   sync.Mutex
	f    *os.File
	next int // the number of the next line
	// firstLine is the number of the first line written to the current
	// file, 0 until one was.
	firstLine int
	ts        time.Time
}

func newFakeWriter(t *testing.T, path string) *fakeWriter {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fakeWriter{path: path, f: f, next: 1, ts: time.Date(2024, 1, 2, 15, 0, 0, 0, time.UTC)}
}

// reopen is the runtime's ReopenContainerLog.
func (w *fakeWriter) reopen(string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	w.f.Close()
	w.f, w.firstLine = f, 0
	return nil
}

// record writes one record.
func (w *fakeWriter) record(stream, tag, content string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ts = w.ts.Add(time.Microsecond)
	if w.firstLine == 0 {
		w.firstLine = w.next
	}
	_, err := fmt.Fprintf(w.f, "%s %s %s %s\n", w.ts.Format(time.RFC3339Nano), stream, tag, content)
	return err
}

// line writes line number w.next, every fifth one split in two records (so
// that a rotation may fall between them), on stdout or stderr.
func (w *fakeWriter) line() error {
	w.mu.Lock()
	n := w.next
	w.mu.Unlock()
	text, stream := strconv.Itoa(n), "stdout"
	if n%3 == 0 {
		stream = "stderr"
	}
	if n%5 == 0 {
		if err := w.record(stream, "P", text[:1]); err != nil {
			return err
		}
		text = text[1:]
	}
	if err := w.record(stream, "F", text); err != nil {
		return err
	}
	w.mu.Lock()
	w.next++
	w.mu.Unlock()
	return nil
}

// writeBatches writes lines lines in batches, waiting after each batch
// for a rotation to be done, so that every batch sees one; it tells on the
// returned channel when it is done.
func (w *fakeWriter) writeBatches(lines, batch int, rotated <-chan struct{}) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := 1; i <= lines; i++ {
			if err := w.line(); err != nil {
				done <- err
				return
			}
			if i%batch == 0 {
				<-rotated
			}
		}
		done <- nil
	}()
	return done
}

// written returns how many lines were written.
func (w *fakeWriter) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next - 1
}

func (w *fakeWriter) currentFirstLine() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstLine
}

// rotatingLog returns a runtime running one container of pod, whose log
// (at the returned path) w writes, and a Rotator of that log with maxSize
// and maxFiles on the returned clock.
func rotatingLog(t *testing.T, pod string, maxSize int64, maxFiles int) (string, *fakeWriter, *critesting.Runtime, *testingclock.FakeClock, *Rotator) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "0.log")
	w := newFakeWriter(t, path)
	rt := oneContainer(pod, path)
	rt.Reopen = w.reopen
	clk := testingclock.NewFakeClock(time.Date(2024, 1, 2, 15, 0, 0, 0, time.UTC))
	rot, err := NewRotator(Config{Runtime: rt, MaxSize: maxSize, MaxFiles: maxFiles, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return path, w, rt, clk, rot
}

// follower reads a followed log over HTTP, keeping the numbered lines.
type follower struct {
	mu    sync.Mutex
	lines []string
	max   atomic.Int64
	done  chan error
}

func follow(t *testing.T, url string) *follower {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	fl := &follower{done: make(chan error, 1)}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			fl.mu.Lock()
			fl.lines = append(fl.lines, sc.Text())
			fl.mu.Unlock()
			if n, err := strconv.Atoi(sc.Text()); err == nil && int64(n) > fl.max.Load() {
				fl.max.Store(int64(n))
			}
		}
		fl.done <- sc.Err()
	}()
	return fl
}

// waitFor polls cond every millisecond until it holds or a minute passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// TestFollowAcrossRotations writes numbered lines while the Rotator rotates
// the log again and again (renaming, compressing and removing files) and
// the runtime switches to new files; a follower must see every line exactly
// once, in order.
func TestFollowAcrossRotations(t *testing.T) {
	const (
		lines = 6000
		batch = 200
	)
	path, w, rt, clk, rot := rotatingLog(t, "busy", 256, 3)
	h, err := NewHandler(HandlerConfig{Runtime: rt, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	fl := follow(t, srv.URL+"/containerLogs/default/busy/app?follow=true")

	rotated := make(chan struct{}, lines/batch)
	writerDone := w.writeBatches(lines, batch, rotated)

	ctx := context.Background()
	for k := 1; k <= lines/batch; k++ {
		// Rotate in the middle of batch k, while the writer writes.
		waitFor(t, "the writer", func() bool { return w.written() >= k*batch-batch/2 || len(writerDone) > 0 })
		clk.Step(time.Second)
		rot.rotateAll(ctx)
		rotated <- struct{}{}
		// Rotate again only once the follower reached the new file.
		waitFor(t, "the follower to reach the new file", func() bool {
			first := w.currentFirstLine()
			return (first != 0 && fl.max.Load() >= int64(first)) || len(writerDone) > 0
		})
	}
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	rt.SetContainerState("c1", runtimeapi.ContainerState_CONTAINER_EXITED)
	select {
	case err := <-fl.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("follow did not end after the container exited")
	}
	var want []string
	for i := 1; i <= lines; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if diff := cmp.Diff(want, fl.lines); diff != "" {
		t.Errorf("followed lines (-want +got):\n%s", diff)
	}
	if n := len(rt.Reopens()); n < lines/batch-1 {
		t.Errorf("only %d rotations", n)
	}
	if files := rotatedFiles(path); len(files) > 2 {
		t.Errorf("rotated files %v, want at most MaxFiles-1 = 2", files)
	}
}

// TestFollowBehindByRotations has the log rotated twice, compressing the
// first file, while the follower is still busy writing that file to a slow
// client: it reads the file it had open, the compressed file rotated after
// it, then the current one.
func TestFollowBehindByRotations(t *testing.T) {
	path, w, rt, clk, rot := rotatingLog(t, "p", 1, 5)
	writeLines := func(n int) {
		for range n {
			if err := w.line(); err != nil {
				t.Fatal(err)
			}
		}
	}
	rotate := func() {
		clk.Step(time.Second)
		rot.rotateAll(context.Background())
	}
	writeLines(5)
	// The client is slow: while the follower writes the first file out,
	// the log is rotated, written to, and rotated again.
	var writes int
	out := &hookWriter{hook: func() {
		writes++
		switch writes {
		case 1:
			rotate()
			writeLines(3)
		case 3:
			rotate()
			writeLines(3)
			rt.SetContainerState("c1", runtimeapi.ContainerState_CONTAINER_EXITED)
		}
	}}
	r := newTestReader(path, rt, "c1", out)
	r.chunk = 16
	lf, err := r.open()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.run(context.Background(), lf); err != nil {
		t.Fatal(err)
	}
	want := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("followed (-want +got):\n%s", diff)
	}
	if files := rotatedFiles(path); len(files) != 2 || !strings.HasSuffix(files[0], ".gz") {
		t.Errorf("rotated files %v, want a compressed one and a plain one", files)
	}
}

// hookWriter is a buffer that calls hook before each write.
type hookWriter struct {
	bytes.Buffer
	hook func()
}

func (h *hookWriter) Write(b []byte) (int, error) {
	h.hook()
	return h.Buffer.Write(b)
}
