package agent

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"k8s.io/klog/v2/ktesting"
)

// serve starts a Server on one end of a pipe and returns the other end,
// with a scanner over the server's answers.
func serve(t *testing.T) (net.Conn, *bufio.Scanner) {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	host, guest := net.Pipe()
	s := &Server{BootID: "boot-1", Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, guest) }()
	t.Cleanup(func() {
		host.Close()
		guest.Close()
		<-done
	})
	sc := bufio.NewScanner(host)
	sc.Buffer(nil, MaxLine)
	return host, sc
}

func send(t *testing.T, w net.Conn, line string) {
	t.Helper()
	if err := w.SetWriteDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
}

func receive(t *testing.T, conn net.Conn, sc *bufio.Scanner) Response {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if !sc.Scan() {
		t.Fatalf("no response: %v", sc.Err())
	}
	var resp Response
	if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
		t.Fatalf("response %q: %v", sc.Text(), err)
	}
	return resp
}

func TestServe(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Request
		want Response
	}{
		{
			name: "ping",
			req:  Request{ID: 1, Op: OpPing},
			want: Response{ID: 1, BootID: "boot-1"},
		},
		{
			name: "exec",
			req:  Request{ID: 2, Op: OpExec, Command: "echo out; echo err >&2; exit 3"},
			want: Response{ID: 2, BootID: "boot-1", Stdout: []byte("out\n"), Stderr: []byte("err\n"), ExitCode: 3},
		},
		{
			name: "exec in /",
			req:  Request{ID: 3, Op: OpExec, Command: "pwd"},
			want: Response{ID: 3, BootID: "boot-1", Stdout: []byte("/\n")},
		},
		{
			name: "read",
			req:  Request{ID: 4, Op: OpRead, Path: file},
			want: Response{ID: 4, BootID: "boot-1", Data: []byte("content")},
		},
		{
			name: "read missing",
			req:  Request{ID: 5, Op: OpRead, Path: file + ".missing"},
			want: Response{ID: 5, BootID: "boot-1", Error: "open " + file + ".missing: no such file or directory"},
		},
		{
			name: "unknown",
			req:  Request{ID: 6, Op: "dance"},
			want: Response{ID: 6, BootID: "boot-1", ExitCode: -1, Error: `unknown operation "dance"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, sc := serve(t)
			line, err := json.Marshal(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			send(t, conn, string(line))
			if diff := cmp.Diff(tc.want, receive(t, conn, sc), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServeSkipsTornLines(t *testing.T) {
	conn, sc := serve(t)
	// The tail of a request cut by a reboot, then a whole one.
	send(t, conn, `and":"sleep 1"}`)
	send(t, conn, `{"id":7,"op":"ping"}`)
	if diff := cmp.Diff(Response{ID: 7, BootID: "boot-1"}, receive(t, conn, sc), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("response (-want +got):\n%s", diff)
	}
}

func TestServeTimeoutKillsProcessGroup(t *testing.T) {
	conn, sc := serve(t)
	marker := filepath.Join(t.TempDir(), "survivor")
	// The background child must die with the command: it would write the
	// marker after the timeout otherwise.
	cmd := "(sleep 2; touch " + marker + ") & sleep 60"
	send(t, conn, `{"id":8,"op":"exec","timeoutMillis":200,"command":"`+cmd+`"}`)
	resp := receive(t, conn, sc)
	if resp.ExitCode != -1 || !strings.Contains(resp.Error, "command stopped") {
		t.Errorf("response %+v, want exit code -1 and a stop error", resp)
	}
	// Ask for something that outlasts the child's sleep, then check.
	send(t, conn, `{"id":9,"op":"exec","command":"sleep 3"}`)
	receive(t, conn, sc)
	if _, err := os.Stat(marker); err == nil {
		t.Error("a process the timed-out command started survived it")
	}
}

func TestCappedBuffer(t *testing.T) {
	var b cappedBuffer
	chunk := strings.Repeat("x", 1<<20)
	for range 20 {
		n, err := b.Write([]byte(chunk))
		if n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(chunk))
		}
	}
	if got := len(b.Bytes()); got != MaxOutput || !b.cut {
		t.Errorf("kept %d bytes, cut %v; want %d, true", got, b.cut, MaxOutput)
	}
}
