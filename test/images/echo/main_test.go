package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startBinary builds the program the way the image does, starts it serving
// on loopback ports and returns it with its HTTP address once it serves.
func startBinary(t *testing.T) (*exec.Cmd, string, *bufio.Reader) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go is not on PATH; cannot build the echo program")
	}
	bin := filepath.Join(t.TempDir(), "echo")
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--name", "bin")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	logs := bufio.NewReader(stdout)
	line, err := logs.ReadString('\n')
	if err != nil {
		t.Fatalf("read start-up line: %v", err)
	}
	for _, field := range strings.Fields(line) {
		if addr, ok := strings.CutPrefix(field, "http="); ok {
			return cmd, addr, logs
		}
	}
	t.Fatalf("start-up line has no http= address: %q", line)
	return nil, "", nil
}

// waitExit waits for cmd to exit and returns its exit code and the rest of
// its output.
func waitExit(t *testing.T, cmd *exec.Cmd, logs *bufio.Reader) (int, string) {
	t.Helper()
	done := make(chan string, 1)
	go func() {
		rest, _ := io.ReadAll(logs) // until the process exits and closes stdout
		_ = cmd.Wait()              // the exit code is read below
		done <- string(rest)
	}()
	select {
	case rest := <-done:
		return cmd.ProcessState.ExitCode(), rest
	// Generous: the program allows itself 0.5s, but CI machines are slow.
	case <-time.After(10 * time.Second):
		t.Fatalf("echo did not exit")
		return 0, ""
	}
}

func TestBinaryTerminatesOnSIGTERM(t *testing.T) {
	cmd, _, logs := startBinary(t)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, rest := waitExit(t, cmd, logs)
	if code != 0 || !strings.Contains(rest, "terminating") {
		t.Errorf("after SIGTERM: exit code %d, output %q; want 0 and \"terminating\"", code, rest)
	}
}

func TestBinaryExitsWithRequestedCode(t *testing.T) {
	cmd, addr, logs := startBinary(t)
	resp, err := http.Get("http://" + addr + "/exit?code=3")
	if err != nil {
		t.Fatalf("GET /exit: %v", err)
	}
	resp.Body.Close()
	if code, rest := waitExit(t, cmd, logs); code != 3 {
		t.Errorf("after /exit?code=3: exit code %d, want 3; output %q", code, rest)
	}
}
