package testing

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// NotifyState is what systemd knows of a notify service from its messages.
type NotifyState struct {
	// Ready is whether READY=1 arrived.
	Ready bool
	// Stopping is whether STOPPING=1 arrived.
	Stopping bool
	// Status is the last STATUS= text.
	Status string
	// WatchdogPings counts WATCHDOG=1 messages.
	WatchdogPings int
	// Extensions lists the EXTEND_TIMEOUT_USEC= requests, in order.
	Extensions []time.Duration
}

// NotifySocket is a fake systemd notification socket ($NOTIFY_SOCKET): a
// unixgram listener that records every message and keeps the state systemd
// would derive from them.
type NotifySocket struct {
	addr string
	conn *net.UnixConn
	done chan struct{}

	mu       sync.Mutex
	messages []string
	state    NotifyState
	// changed is closed and replaced whenever a message arrives.
	changed chan struct{}
}

// NewNotifySocket listens on a socket file in a fresh directory, removed
// with everything else when the test ends.
func NewNotifySocket(t testing.TB) *NotifySocket {
	t.Helper()
	// t.TempDir can exceed the 107 bytes a socket path may have.
	dir, err := os.MkdirTemp("", "sdnotify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return listenNotify(t, filepath.Join(dir, "notify"))
}

// NewAbstractNotifySocket listens on an abstract socket, whose address
// starts with "@" as systemd spells it in $NOTIFY_SOCKET.
func NewAbstractNotifySocket(t testing.TB) *NotifySocket {
	t.Helper()
	return listenNotify(t, "@berth-notify-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
}

func listenNotify(t testing.TB, addr string) *NotifySocket {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	s := &NotifySocket{addr: addr, conn: conn, done: make(chan struct{}), changed: make(chan struct{})}
	go s.receive()
	t.Cleanup(func() {
		_ = conn.Close()
		<-s.done
	})
	return s
}

// Addr is the socket's address, the value for $NOTIFY_SOCKET.
func (s *NotifySocket) Addr() string { return s.addr }

// receive records datagrams until the socket is closed.
func (s *NotifySocket) receive() {
	defer close(s.done)
	buf := make([]byte, 64*1024)
	for {
		n, _, err := s.conn.ReadFromUnix(buf)
		if err != nil {
			return
		}
		s.record(string(buf[:n]))
	}
}

// record applies one message as systemd does.
func (s *NotifySocket) record(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, msg)
	for _, line := range strings.Split(msg, "\n") {
		key, value, _ := strings.Cut(line, "=")
		switch key {
		case "READY":
			s.state.Ready = s.state.Ready || value == "1"
		case "STOPPING":
			s.state.Stopping = s.state.Stopping || value == "1"
		case "STATUS":
			s.state.Status = value
		case "WATCHDOG":
			if value == "1" {
				s.state.WatchdogPings++
			}
		case "EXTEND_TIMEOUT_USEC":
			if usec, err := strconv.ParseInt(value, 10, 64); err == nil {
				s.state.Extensions = append(s.state.Extensions, time.Duration(usec)*time.Microsecond)
			}
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// Messages returns every message received, in order.
func (s *NotifySocket) Messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.messages...)
}

// State returns what systemd would know of the service now.
func (s *NotifySocket) State() NotifyState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state
	st.Extensions = append([]time.Duration(nil), st.Extensions...)
	return st
}

// Wait returns the state once cond holds for it, or the last state and an
// error when ctx ends first.
func (s *NotifySocket) Wait(ctx context.Context, cond func(NotifyState) bool) (NotifyState, error) {
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		st := s.State()
		if cond(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, errors.Join(errors.New("notify socket: condition not reached"), ctx.Err())
		case <-changed:
		}
	}
}
