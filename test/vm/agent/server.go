package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// waitDelay bounds how long a command's output is read after the command
// exited: a daemon it started in the background may hold the pipes open.
const waitDelay = 2 * time.Second

// Server answers Requests. Its zero value is not usable: set BootID.
type Server struct {
	// BootID is reported in every Response.
	BootID string
	// Shell runs OpExec commands as Shell -c COMMAND; empty means /bin/sh.
	Shell string
	// Env is the environment of OpExec commands; nil means the server's.
	Env []string
}

// Serve reads Requests from rw and writes their Responses to it until the
// reading fails (io.EOF when the host side closes). Requests are served
// concurrently; ctx bounds them all. When the reading ends, the commands
// still running are killed, and Serve returns once they are gone, with the
// error that ended the reading.
func (s *Server) Serve(ctx context.Context, rw io.ReadWriter) error {
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg  sync.WaitGroup
		wmu sync.Mutex
	)
	// Once the host is gone, nobody reads the answers: stop the commands.
	defer func() {
		cancel()
		wg.Wait()
	}()
	reply := func(resp Response) {
		resp.BootID = s.BootID
		line, err := json.Marshal(resp)
		if err != nil {
			logger.Error(err, "Encoding a response", "id", resp.ID)
			return
		}
		wmu.Lock()
		defer wmu.Unlock()
		if _, err := rw.Write(append(line, '\n')); err != nil {
			logger.Error(err, "Writing a response", "id", resp.ID)
		}
	}
	sc := bufio.NewScanner(rw)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	for sc.Scan() {
		var req Request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			// A torn line, e.g. written by the host while the guest
			// rebooted: nobody waits for it any more.
			logger.Info("Skipping a line that is not a request", "bytes", len(sc.Bytes()), "err", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			reply(s.handle(ctx, req))
		}()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read requests: %w", err)
	}
	return io.EOF
}

// handle serves one request.
func (s *Server) handle(ctx context.Context, req Request) Response {
	switch req.Op {
	case OpPing:
		return Response{ID: req.ID}
	case OpExec:
		return s.exec(ctx, req)
	case OpRead:
		return readFile(req)
	default:
		return Response{ID: req.ID, ExitCode: -1, Error: fmt.Sprintf("unknown operation %q", req.Op)}
	}
}

// exec runs req.Command in a process group of its own, so that a timeout
// kills whatever the command started too.
func (s *Server) exec(ctx context.Context, req Request) Response {
	if req.TimeoutMillis > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
	}
	shell := s.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	var stdout, stderr cappedBuffer
	cmd := exec.CommandContext(ctx, shell, "-c", req.Command)
	cmd.Env = s.Env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	resp := Response{ID: req.ID, Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: -1}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		resp.Error = fmt.Sprintf("command stopped: %v", context.Cause(ctx))
	case errors.As(err, &exitErr):
		resp.ExitCode = exitErr.ExitCode()
	case err != nil && !errors.Is(err, exec.ErrWaitDelay):
		resp.Error = err.Error()
	default:
		resp.ExitCode = cmd.ProcessState.ExitCode()
	}
	if stdout.cut || stderr.cut {
		resp.Error = fmt.Sprintf("output cut off at %d bytes per stream", MaxOutput)
	}
	return resp
}

// readFile returns the content of req.Path.
func readFile(req Request) Response {
	resp := Response{ID: req.ID}
	f, err := os.Open(req.Path)
	if err != nil {
		resp.Error = err.Error()
		return resp
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFile+1))
	switch {
	case err != nil:
		resp.Error = err.Error()
	case len(data) > MaxFile:
		resp.Error = (&fs.PathError{Op: "read", Path: req.Path, Err: fmt.Errorf("larger than %d bytes", MaxFile)}).Error()
	default:
		resp.Data = data
	}
	return resp
}

// cappedBuffer keeps the first MaxOutput bytes written to it and drops the
// rest, so that a chatty command cannot make a Response too large.
type cappedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	cut bool
}

// Write implements io.Writer; it never fails.
func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := MaxOutput - b.buf.Len()
	if len(p) > room {
		b.buf.Write(p[:max(room, 0)])
		b.cut = true
		return len(p), nil
	}
	b.buf.Write(p)
	return len(p), nil
}

// Bytes returns what was kept.
func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
