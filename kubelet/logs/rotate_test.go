package logs

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	critesting "github.com/berthnode/berth/cri/testing"
)

func TestRotatorFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	rt := oneContainer("p", path)
	var generation int
	rt.Reopen = func(string) error {
		generation++
		return os.WriteFile(path, nil, 0o640)
	}
	clk := testingclock.NewFakeClock(time.Date(2024, 1, 2, 15, 0, 0, 0, time.UTC))
	rot, err := NewRotator(Config{Runtime: rt, MaxSize: 10, MaxFiles: 4, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	// Leftovers of an interrupted compression: a temporary file, and an
	// original whose compressed copy was finished.
	mustWrite(t, path+".20240102-140000.tmp", "partial")
	mustWrite(t, path+".20240102-140001", "orig")
	mustGzip(t, path+".20240102-140001.gz", "orig")
	type step struct {
		content   string
		wantFiles map[string]string
	}
	steps := []step{
		// Under the limit: nothing happens, leftovers included.
		{content: "short", wantFiles: map[string]string{
			"0.log": "short", "0.log.20240102-140000.tmp": "partial",
			"0.log.20240102-140001": "orig", "0.log.20240102-140001.gz": "orig"}},
		{content: "first generation", wantFiles: map[string]string{
			"0.log": "", "0.log.20240102-150002": "first generation", "0.log.20240102-140001.gz": "orig"}},
		{content: "second generation", wantFiles: map[string]string{
			"0.log": "", "0.log.20240102-150003": "second generation",
			"0.log.20240102-150002.gz": "first generation", "0.log.20240102-140001.gz": "orig"}},
		// MaxFiles 4: the current file and three rotated ones.
		{content: "third generation", wantFiles: map[string]string{
			"0.log": "", "0.log.20240102-150004": "third generation",
			"0.log.20240102-150003.gz": "second generation", "0.log.20240102-150002.gz": "first generation"}},
		{content: "fourth generation", wantFiles: map[string]string{
			"0.log": "", "0.log.20240102-150005": "fourth generation",
			"0.log.20240102-150004.gz": "third generation", "0.log.20240102-150003.gz": "second generation"}},
	}
	for i, s := range steps {
		mustWrite(t, path, s.content)
		clk.Step(time.Second)
		rot.rotateAll(context.Background())
		if diff := cmp.Diff(s.wantFiles, readDir(t, dir)); diff != "" {
			t.Errorf("step %d: files (-want +got):\n%s", i, diff)
		}
	}
	if generation != 4 {
		t.Errorf("%d reopens, want 4", generation)
	}
	// The log path of a running container is asked for once.
	if rt.CallCount("ContainerStatus") != 1 {
		t.Errorf("%d ContainerStatus calls over %d checks, want 1", rt.CallCount("ContainerStatus"), len(steps))
	}
}

// TestRotatorReopenFails renames the log back when the runtime cannot
// reopen it, goes on with the other containers, and rotates next time.
func TestRotatorReopenFails(t *testing.T) {
	dir := t.TempDir()
	rt := critesting.NewRuntime()
	rt.AddSandbox(critesting.Sandbox{ID: "sb", Namespace: "default", Name: "p", UID: "u1", CreatedAt: 1})
	paths := map[string]string{}
	for _, id := range []string{"bad", "good", "exited"} {
		paths[id] = filepath.Join(dir, id+".log")
		mustWrite(t, paths[id], "0123456789 too long")
		state := runtimeapi.ContainerState_CONTAINER_RUNNING
		if id == "exited" {
			state = runtimeapi.ContainerState_CONTAINER_EXITED
		}
		rt.AddContainer(critesting.Container{ID: id, SandboxID: "sb", Name: id, State: state,
			CreatedAt: 2, LogPath: paths[id]})
	}
	// A running container whose log file is gone gets it reopened.
	rt.AddContainer(critesting.Container{ID: "lost", SandboxID: "sb", Name: "lost", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		CreatedAt: 2, LogPath: filepath.Join(dir, "lost.log")})
	failing := true
	rt.Reopen = func(id string) error {
		if id == "bad" && failing {
			return errors.New("runtime says no")
		}
		return os.WriteFile(filepath.Join(dir, id+".log"), nil, 0o640)
	}
	clk := testingclock.NewFakeClock(time.Date(2024, 1, 2, 15, 0, 0, 0, time.UTC))
	rot, err := NewRotator(Config{Runtime: rt, MaxSize: 10, MaxFiles: 2, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	rot.rotateAll(context.Background())
	want := map[string]string{
		"bad.log":                  "0123456789 too long",
		"good.log":                 "",
		"good.log.20240102-150000": "0123456789 too long",
		"exited.log":               "0123456789 too long",
		"lost.log":                 "",
	}
	if diff := cmp.Diff(want, readDir(t, dir)); diff != "" {
		t.Errorf("files after a failed reopen (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bad", "good", "lost"}, rt.Reopens()); diff != "" {
		t.Errorf("reopens (-want +got):\n%s", diff)
	}

	failing = false
	clk.Step(time.Second)
	rot.rotateAll(context.Background())
	want["bad.log"], want["bad.log.20240102-150001"] = "", "0123456789 too long"
	if diff := cmp.Diff(want, readDir(t, dir)); diff != "" {
		t.Errorf("files after the retry (-want +got):\n%s", diff)
	}
}

// TestRotatorRun rotates on the clock's ticks until the context ends.
func TestRotatorRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	mustWrite(t, path, "0123456789 too long")
	rt := oneContainer("p", path)
	reopened := make(chan struct{}, 1)
	rt.Reopen = func(string) error {
		reopened <- struct{}{}
		return nil
	}
	clk := testingclock.NewFakeClock(time.Date(2024, 1, 2, 15, 0, 0, 0, time.UTC))
	rot, err := NewRotator(Config{Runtime: rt, MaxSize: 10, MaxFiles: 2, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rot.Run(ctx) }()
	waitFor(t, "the rotator's ticker", clk.HasWaiters)
	clk.Step(DefaultRotateInterval)
	select {
	case <-reopened:
	case <-time.After(time.Minute):
		t.Fatal("no rotation after an interval")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	rt := critesting.NewRuntime()
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "ok", cfg: Config{Runtime: rt, MaxSize: 1, MaxFiles: 2}},
		{name: "everything wrong", cfg: Config{MaxFiles: 1, Interval: -1},
			want: []string{"runtime: required", "max size 0", "max files 1", "interval -1ns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != (len(tt.want) > 0) {
				t.Fatalf("Validate() = %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "10Mi", want: 10 << 20},
		{in: "1G", want: 1e9},
		{in: "512", want: 512},
		{in: "0", wantErr: true},
		{in: "-1Mi", wantErr: true},
		{in: "ten", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// oneContainer returns a runtime running one container, c1 of pod
// default/pod, logging to path.
func oneContainer(pod, path string) *critesting.Runtime {
	rt := critesting.NewRuntime()
	rt.AddSandbox(critesting.Sandbox{ID: "sb", Namespace: "default", Name: pod, UID: "u1", CreatedAt: 1})
	rt.AddContainer(critesting.Container{ID: "c1", SandboxID: "sb", Name: "app", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
		CreatedAt: 2, LogPath: path})
	return rt
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

func mustGzip(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// readDir returns the files of dir by name, with their (uncompressed)
// contents.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(e.Name(), ".gz") {
			if r, err = gzip.NewReader(f); err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
		}
		b, err := io.ReadAll(r)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}
