package vm

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/test/vm/agent"
)

// fakeQemu stands in for qemu's end of the agent's port: a unix socket
// whose connections go to handle.
type fakeQemu struct {
	socket string
	mu     sync.Mutex
	conns  []net.Conn
}

// newFakeQemu listens on a socket of t's and serves each connection with
// handle.
func newFakeQemu(t *testing.T, handle func(net.Conn)) *fakeQemu {
	t.Helper()
	q := &fakeQemu{socket: filepath.Join(t.TempDir(), "agent.sock")}
	l, err := net.Listen("unix", q.socket)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		q.dropAll()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			q.mu.Lock()
			q.conns = append(q.conns, c)
			q.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	return q
}

// dropAll closes every connection, as qemu does when it exits.
func (q *fakeQemu) dropAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range q.conns {
		c.Close()
	}
}

// accepted returns how many connections were made.
func (q *fakeQemu) accepted() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.conns)
}

// serveAgent serves a connection with the real agent server.
func serveAgent(t *testing.T, bootID string) func(net.Conn) {
	_, ctx := ktesting.NewTestContext(t)
	return func(c net.Conn) {
		s := &agent.Server{BootID: bootID}
		_ = s.Serve(ctx, c)
	}
}

// testVM returns a VM without qemu whose agent is at socket.
func testVM(t *testing.T, socket string) *VM {
	cfg := validConfig(t)
	cfg.BootTimeout = 2 * time.Second
	cfg.Clock = clock.RealClock{}
	return &VM{cfg: cfg, dir: t.TempDir(), exited: make(chan struct{}), agent: newAgentClient(socket)}
}

func TestVMOverAgent(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	q := newFakeQemu(t, serveAgent(t, "boot-1"))
	v := testVM(t, q.socket)
	defer v.agent.close()
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code, err := v.Run(ctx, "echo out; echo err >&2; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{"out\n", "err\n", 3}, []any{string(stdout), string(stderr), code}); diff != "" {
		t.Errorf("Run (-want +got):\n%s", diff)
	}
	if _, err := v.Output(ctx, "echo nope >&2; exit 3"); err == nil || !strings.Contains(err.Error(), "exited with 3: nope") {
		t.Errorf("Output of a failing command: %v, want its exit code and standard error", err)
	}
	if got, err := v.ReadFile(ctx, file); err != nil || string(got) != "content" {
		t.Errorf("ReadFile = %q, %v; want %q", got, err, "content")
	}
	if _, err := v.ReadFile(ctx, file+".missing"); !errors.Is(err, ErrAgent) {
		t.Errorf("ReadFile of a missing file: %v, want ErrAgent", err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, _, _, err := v.Run(short, "sleep 10"); !errors.Is(err, ErrAgent) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run past its deadline: %v, want ErrAgent or DeadlineExceeded", err)
	}
	if id, err := v.waitAgent(ctx, ""); err != nil || id != "boot-1" {
		t.Errorf("waitAgent = %q, %v; want boot-1", id, err)
	}
	if _, err := v.waitAgent(ctx, "boot-1"); err == nil {
		t.Error("waitAgent for another boot: no error, want a timeout")
	}
}

func TestAgentClientReconnects(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	q := newFakeQemu(t, serveAgent(t, "boot-1"))
	c := newAgentClient(q.socket)
	defer c.close()
	if _, err := c.call(ctx, agent.Request{Op: agent.OpPing}); err != nil {
		t.Fatal(err)
	}
	q.dropAll()
	// The call that finds the connection dead fails; one of the next
	// ones dials again.
	var err error
	for range 3 {
		if _, err = c.call(ctx, agent.Request{Op: agent.OpPing}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no call succeeded after the connection was lost: %v", err)
	}
	if got := q.accepted(); got != 2 {
		t.Errorf("connections made: %d, want 2", got)
	}
}

func TestAgentClientSkipsStaleAnswers(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	q := newFakeQemu(t, func(conn net.Conn) {
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			// A torn line and an answer to a request of a previous
			// boot come first, then the answer.
			_, _ = conn.Write([]byte("ootID\":\"x\"}\n{\"id\":999,\"bootID\":\"old\"}\n"))
			_, _ = conn.Write([]byte(strings.Replace(sc.Text(), `"op":"ping"`, `"bootID":"new"`, 1) + "\n"))
		}
	})
	c := newAgentClient(q.socket)
	defer c.close()
	resp, err := c.call(ctx, agent.Request{Op: agent.OpPing})
	if err != nil {
		t.Fatal(err)
	}
	if resp.BootID != "new" {
		t.Errorf("answer from boot %q, want new", resp.BootID)
	}
}

func TestAgentClientUnansweredCall(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	// A guest that rebooted: the request is read and lost.
	q := newFakeQemu(t, func(conn net.Conn) {
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
		}
	})
	c := newAgentClient(q.socket)
	defer c.close()
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := c.call(ctx, agent.Request{Op: agent.OpPing}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call = %v, want DeadlineExceeded", err)
	}
}

func TestVMNotRunning(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	v := testVM(t, filepath.Join(t.TempDir(), "none.sock"))
	v.exitErr = errors.New("qemu: exit status 1")
	close(v.exited)
	if _, _, _, err := v.Run(ctx, "true"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Run = %v, want ErrNotRunning", err)
	}
	if _, err := v.waitAgent(ctx, ""); !errors.Is(err, ErrNotRunning) {
		t.Errorf("waitAgent = %v, want ErrNotRunning", err)
	}
}
