package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// NotifySocketEnv is the environment variable through which systemd hands a
// Type=notify service the address of its notification socket.
const NotifySocketEnv = "NOTIFY_SOCKET"

// ErrUnsupportedNotifySocket is returned for a $NOTIFY_SOCKET that is neither
// a file system path nor an abstract socket name (systemd's vsock: addresses,
// used only inside virtual machines that systemd-vmspawn runs).
var ErrUnsupportedNotifySocket = errors.New("unsupported notification socket address")

// Notifier sends sd_notify(3) messages to the service manager: readiness,
// status text, shutdown, watchdog keep-alives. A Notifier without a socket
// (berth not started by systemd as Type=notify) sends nothing and reports no
// error, so callers never need to check whether systemd is there.
//
// Each message is one datagram on a fresh connection, as sd_notify does, so
// a Notifier is safe for concurrent use and survives a restart of the
// service manager (systemctl daemon-reexec). go-systemd's daemon.SdNotify
// does the same but reads $NOTIFY_SOCKET on every call; a Notifier holds the
// address as a value, so tests and callers never touch the environment.
type Notifier struct {
	// addr is the notification socket: a path, or "@name" for an abstract
	// socket (Go's net package maps the leading "@" to the abstract
	// namespace). Empty disables the Notifier.
	addr string
}

// NewNotifier returns a Notifier for the notification socket at addr, as
// $NOTIFY_SOCKET spells it: an absolute path, or "@name" for an abstract
// socket. An empty addr returns a Notifier that sends nothing.
func NewNotifier(addr string) (*Notifier, error) {
	if addr != "" && !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		return &Notifier{}, fmt.Errorf("%s=%q: %w", NotifySocketEnv, addr, ErrUnsupportedNotifySocket)
	}
	return &Notifier{addr: addr}, nil
}

// NotifierFromEnvironment returns a Notifier for $NOTIFY_SOCKET. The
// variable is left set: with NotifyAccess=main, systemd ignores messages
// from berth's child processes anyway. On error the returned Notifier is
// still usable and sends nothing.
func NotifierFromEnvironment() (*Notifier, error) {
	return NewNotifier(os.Getenv(NotifySocketEnv))
}

// Enabled reports whether the Notifier sends messages at all.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != "" }

// Ready tells systemd that startup is complete (READY=1), with status as the
// text `systemctl status` shows. Until Ready, `systemctl start` waits, and
// systemd fails the start after TimeoutStartSec.
func (n *Notifier) Ready(status string) error {
	return n.Notify(withStatus("READY=1", status)...)
}

// Status updates the free-form status text `systemctl status` shows; an
// empty status clears it.
func (n *Notifier) Status(status string) error {
	return n.Notify(statusField(status))
}

// Stopping tells systemd that berth is shutting down (STOPPING=1), with
// status saying why.
func (n *Notifier) Stopping(status string) error {
	return n.Notify(withStatus("STOPPING=1", status)...)
}

// Watchdog sends a watchdog keep-alive (WATCHDOG=1). Use [Watchdog] rather
// than calling this directly: it pings only while berth is healthy.
func (n *Notifier) Watchdog() error {
	return n.Notify("WATCHDOG=1")
}

// ExtendTimeout asks systemd for d more time (EXTEND_TIMEOUT_USEC) in the
// current start-up, shutdown or runtime phase: a start that makes progress
// can outlast TimeoutStartSec by extending it before it expires.
func (n *Notifier) ExtendTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("extend timeout by %v: must be positive", d)
	}
	return n.Notify("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

// Notify sends the given KEY=VALUE assignments as one message. It is a no-op
// when the Notifier is not Enabled.
func (n *Notifier) Notify(assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	msg := strings.Join(assignments, "\n")
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %q: %w", msg, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sd_notify %q: %w", msg, err)
	}
	return nil
}

// withStatus returns the assignment followed by STATUS=status, or alone
// when status is empty.
func withStatus(assignment, status string) []string {
	if status == "" {
		return []string{assignment}
	}
	return []string{assignment, statusField(status)}
}

// statusField renders STATUS=: one line, as systemd keeps only that.
func statusField(status string) string {
	return "STATUS=" + strings.Join(strings.Fields(status), " ")
}
