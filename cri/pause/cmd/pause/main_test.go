package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestRunFlags(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
	}{
		{name: "version", args: []string{"-v"}, wantCode: 0, wantStdout: "berth pause " + version + "\n"},
		{name: "unknown flag", args: []string{"-x"}, wantCode: 2},
		{name: "extra argument", args: []string{"sleep"}, wantCode: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if diff := cmp.Diff([]any{tc.wantCode, tc.wantStdout}, []any{code, stdout.String()}); diff != "" {
				t.Errorf("run(%q) (-want +got):\n%s\nstderr: %s", tc.args, diff, stderr.String())
			}
		})
	}
}

// buildPause builds this program the way the image does and returns its path.
func buildPause(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH; cannot build the pause program")
	}
	bin := filepath.Join(t.TempDir(), "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startPause starts cmd and returns once the pause process it runs handles
// signals.
func startPause(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if !strings.Contains(line, "not running as PID 1") {
		t.Fatalf("pause did not report readiness: %q, %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
}

func terminate(t *testing.T, cmd *exec.Cmd, sig os.Signal) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("pause after %v: %v, want exit status 0", sig, err)
	}
}

func TestProgramExitsOnSignal(t *testing.T) {
	bin := buildPause(t)
	for _, sig := range []os.Signal{unix.SIGTERM, unix.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin)
			startPause(t, cmd)
			terminate(t, cmd, sig)
		})
	}
}

func TestProgramReapsChildren(t *testing.T) {
	bin := buildPause(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("sh is not on PATH; cannot give the pause program children")
	}
	// The shell forks two children and then becomes pause, which inherits
	// them: one that has already exited (reaped by the start-up sweep) and
	// one that exits later (reaped on SIGCHLD).
	cmd := exec.Command(sh, "-c",
		`true >/dev/null & echo $!; sleep 0.3 >/dev/null & echo $!; exec >&-; exec "$0"`, bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	startPause(t, cmd)
	out, err := io.ReadAll(stdout) // the shell closed its stdout before exec
	if err != nil {
		t.Fatal(err)
	}
	pids := strings.Fields(string(out))
	if len(pids) != 2 {
		t.Fatalf("shell printed %q, want two child PIDs", out)
	}
	for _, p := range pids {
		pid, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("child PID %q: %v", p, err)
		}
		waitReaped(t, pid)
	}
	terminate(t, cmd, unix.SIGTERM)
}

// waitReaped waits until pid no longer exists, failing if it stays a zombie.
func waitReaped(t *testing.T, pid int) {
	t.Helper()
	stat := filepath.Join("/proc", strconv.Itoa(pid), "stat")
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(stat)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			t.Fatalf("read %s: %v", stat, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d was not reaped: %s", pid, data)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
