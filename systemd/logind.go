package systemd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/berthnode/berth/kubelet/atomicfile"
)

// systemd-logind's and systemd's D-Bus names, as in org.freedesktop.login1(5)
// and org.freedesktop.systemd1(5).
const (
	logindService   = "org.freedesktop.login1"
	logindPath      = dbus.ObjectPath("/org/freedesktop/login1")
	logindManager   = "org.freedesktop.login1.Manager"
	systemdService  = "org.freedesktop.systemd1"
	systemdPath     = dbus.ObjectPath("/org/freedesktop/systemd1")
	systemdManager  = "org.freedesktop.systemd1.Manager"
	logindUnit      = "systemd-logind.service"
	dbusProperties  = "org.freedesktop.DBus.Properties"
	prepareShutdown = "PrepareForShutdown"
)

// InhibitRequest is an inhibitor lock as logind's Inhibit method takes it;
// see https://systemd.io/INHIBITOR_LOCKS/.
type InhibitRequest struct {
	// What is the colon-separated list of operations inhibited: "shutdown".
	What string
	// Who names the program taking the lock, for `systemd-inhibit --list`.
	Who string
	// Why says why, for the same listing.
	Why string
	// Mode is "delay" (hold the operation up to InhibitDelayMaxSec) or
	// "block".
	Mode string
}

// Logind is the part of systemd-logind's D-Bus API that graceful node
// shutdown uses. [DialLogind] returns the system's; tests use the fake in
// package systemd/testing. Implementations are safe for concurrent use.
type Logind interface {
	// InhibitDelayMax returns the longest a delay lock may hold up a
	// shutdown: logind's InhibitDelayMaxUSec (InhibitDelayMaxSec= in
	// logind.conf, 5s by default).
	InhibitDelayMax(ctx context.Context) (time.Duration, error)
	// Inhibit takes an inhibitor lock; closing the returned Closer releases
	// it. The lock also ends with the process.
	Inhibit(ctx context.Context, req InhibitRequest) (io.Closer, error)
	// PrepareForShutdown subscribes to logind's PrepareForShutdown signal:
	// true when a shutdown or reboot begins (delay locks now hold it up),
	// false when it was cancelled. The channel is closed when the
	// connection to logind is lost or closed.
	PrepareForShutdown(ctx context.Context) (<-chan bool, error)
	// ReloadConfig makes logind reread logind.conf and its drop-ins.
	ReloadConfig(ctx context.Context) error
	// Close ends the connection, closing subscriptions. Locks taken stay
	// held until closed themselves.
	Close() error
}

// DialLogind connects to systemd-logind on the system bus. It fails where
// there is no system bus (no systemd as PID 1, or a container without
// /run/dbus).
func DialLogind(ctx context.Context) (Logind, error) {
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("connecting to the system bus: %w", err)
	}
	return newBusLogind(conn), nil
}

// DialLogindAt connects to logind on the D-Bus bus at address
// ("unix:path=/run/dbus/system_bus_socket"): another machine's system bus
// through a forwarded socket, or a private bus in tests.
func DialLogindAt(ctx context.Context, address string) (Logind, error) {
	conn, err := dbus.Connect(address, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("connecting to the bus at %s: %w", address, err)
	}
	return newBusLogind(conn), nil
}

// busLogind is Logind over D-Bus.
type busLogind struct {
	conn *dbus.Conn
	// subscribed guards against two PrepareForShutdown subscriptions on
	// one connection, which would share one signal channel.
	mu         sync.Mutex
	subscribed bool
}

func newBusLogind(conn *dbus.Conn) *busLogind {
	return &busLogind{conn: conn}
}

// logind returns logind's manager object.
func (l *busLogind) logind() dbus.BusObject { return l.conn.Object(logindService, logindPath) }

// InhibitDelayMax implements Logind.
func (l *busLogind) InhibitDelayMax(ctx context.Context) (time.Duration, error) {
	var v dbus.Variant
	err := l.logind().CallWithContext(ctx, dbusProperties+".Get", 0, logindManager, "InhibitDelayMaxUSec").Store(&v)
	if err != nil {
		return 0, fmt.Errorf("reading logind's InhibitDelayMaxUSec: %w", err)
	}
	usec, ok := v.Value().(uint64)
	if !ok {
		return 0, fmt.Errorf("logind's InhibitDelayMaxUSec is a %s, not a uint64", v.Signature())
	}
	return time.Duration(usec) * time.Microsecond, nil
}

// Inhibit implements Logind.
func (l *busLogind) Inhibit(ctx context.Context, req InhibitRequest) (io.Closer, error) {
	var fd dbus.UnixFD
	err := l.logind().CallWithContext(ctx, logindManager+".Inhibit", 0, req.What, req.Who, req.Why, req.Mode).Store(&fd)
	if err != nil {
		return nil, fmt.Errorf("taking a logind %s lock on %q: %w", req.Mode, req.What, err)
	}
	return os.NewFile(uintptr(fd), "logind-inhibitor"), nil
}

// PrepareForShutdown implements Logind.
func (l *busLogind) PrepareForShutdown(ctx context.Context) (<-chan bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subscribed {
		return nil, errors.New("already subscribed to PrepareForShutdown on this connection")
	}
	err := l.conn.AddMatchSignalContext(ctx,
		dbus.WithMatchSender(logindService),
		dbus.WithMatchObjectPath(logindPath),
		dbus.WithMatchInterface(logindManager),
		dbus.WithMatchMember(prepareShutdown))
	if err != nil {
		return nil, fmt.Errorf("subscribing to logind's %s: %w", prepareShutdown, err)
	}
	l.subscribed = true
	signals := make(chan *dbus.Signal, 16)
	l.conn.Signal(signals)
	out := make(chan bool, 16)
	go func() {
		// godbus closes signals when the connection ends.
		defer close(out)
		for s := range signals {
			if s.Path != logindPath || s.Name != logindManager+"."+prepareShutdown || len(s.Body) != 1 {
				continue
			}
			if active, ok := s.Body[0].(bool); ok {
				out <- active
			}
		}
	}()
	return out, nil
}

// ReloadConfig implements Logind: logind rereads its configuration on
// SIGHUP, which systemd's KillUnit delivers (systemctl kill -s HUP
// systemd-logind). logind handles the signal asynchronously: read
// InhibitDelayMax until it shows the change.
func (l *busLogind) ReloadConfig(ctx context.Context) error {
	obj := l.conn.Object(systemdService, systemdPath)
	call := obj.CallWithContext(ctx, systemdManager+".KillUnit", 0, logindUnit, "main", int32(syscall.SIGHUP))
	if call.Err != nil {
		return fmt.Errorf("reloading logind's configuration: %w", call.Err)
	}
	return nil
}

// Close implements Logind.
func (l *busLogind) Close() error {
	return l.conn.Close()
}

// LogindConfDir is the directory of logind's drop-in configuration files.
const LogindConfDir = "/etc/systemd/logind.conf.d"

// LogindDropInName is the drop-in berth writes to raise logind's
// InhibitDelayMaxSec: kubelet's own name, on purpose. berth takes kubelet's
// place on the node, and a 99-kubelet.conf left by a kubelet that ran
// before would otherwise sort after berth's file and override it; with one
// file, whichever node agent runs owns the setting.
const LogindDropInName = "99-kubelet.conf"

// WriteLogindDropIn writes dir/99-kubelet.conf raising logind's
// InhibitDelayMaxSec to delay, rounded up to whole seconds. Logind reads it
// after ReloadConfig. The file is replaced atomically.
func WriteLogindDropIn(dir string, delay time.Duration) error {
	seconds := int64((delay + time.Second - 1) / time.Second)
	content := "# Written by berth (the node agent) for graceful node shutdown: logind must\n" +
		"# let the inhibitor lock hold a shutdown for kubelet's shutdownGracePeriod.\n" +
		"[Login]\n" +
		"InhibitDelayMaxSec=" + strconv.FormatInt(seconds, 10) + "\n"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("logind drop-in: %w", err)
	}
	if _, err := atomicfile.WriteIfChanged(filepath.Join(dir, LogindDropInName), []byte(content), 0o644); err != nil {
		return fmt.Errorf("logind drop-in: %w", err)
	}
	return nil
}
