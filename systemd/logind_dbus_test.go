package systemd_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/berthnode/berth/systemd"
	sdtesting "github.com/berthnode/berth/systemd/testing"
)

// TestBusLogindContract runs the Logind contract against the D-Bus client,
// talking through a private dbus-daemon to a logind played by a FakeLogind
// exported on the bus. It checks the D-Bus side: names, signatures, file
// descriptor passing, signal matching. Real logind is checked in the VM.
func TestBusLogindContract(t *testing.T) {
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon is not installed (Debian: apt-get install dbus-daemon); it runs the private bus of this test")
	}
	sdtesting.RunLogindSuite(t, func(t *testing.T) sdtesting.LogindEnv {
		address := startBus(t, daemon)
		dir := t.TempDir()
		server := serveLogind(t, address, sdtesting.NewFakeLogind(dir))
		return sdtesting.LogindEnv{
			Dial:    func(ctx context.Context) (systemd.Logind, error) { return systemd.DialLogindAt(ctx, address) },
			Server:  server,
			ConfDir: dir,
		}
	})
}

// busConfig is a dbus-daemon configuration for a private bus that lets
// anyone own any name and send anything.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// startBus starts a private dbus-daemon, stopped when the test ends, and
// returns its address.
func startBus(t *testing.T, daemon string) string {
	t.Helper()
	// A socket path may have at most 107 bytes; t.TempDir's can be longer.
	dir, err := os.MkdirTemp("", "bus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	config := filepath.Join(dir, "bus.conf")
	content := strings.Replace(busConfig, "SOCKET", filepath.Join(dir, "socket"), 1)
	if err := os.WriteFile(config, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(daemon, "--config-file="+config, "--nofork", "--nopidfile", "--print-address=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// dbus-daemon complains when it may not raise its file limit; show
	// what it said only when the test fails.
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("dbus-daemon:\n%s", stderr.String())
		}
	})
	// dbus-daemon prints its address once it listens.
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading dbus-daemon's address: %v", err)
	}
	return strings.TrimSpace(line)
}

// busLogindServer plays logind and systemd on a bus, backed by a
// FakeLogind: it answers logind's InhibitDelayMaxUSec property and Inhibit
// method, systemd's KillUnit (SIGHUP to systemd-logind reloads), and
// forwards the fake's PrepareForShutdown announcements as D-Bus signals.
// Locks are FIFOs as logind's are: the client holds the write end, and the
// lock is released when every copy of it is closed.
type busLogindServer struct {
	fake *sdtesting.FakeLogind
	conn *dbus.Conn

	mu    sync.Mutex
	locks []*busLock
}

// busLock is one inhibitor lock handed out over the bus.
type busLock struct {
	req systemd.InhibitRequest
	// read sees end of file once the lock is released.
	read *os.File
	// write is the server's copy of the end sent to the client, closed
	// once the reply carrying it is known to be sent.
	write *os.File
}

// serveLogind exports fake on the bus at address until the test ends.
func serveLogind(t *testing.T, address string, fake *sdtesting.FakeLogind) *busLogindServer {
	t.Helper()
	conn, err := dbus.Connect(address)
	if err != nil {
		t.Fatalf("connecting the fake logind to the bus: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	s := &busLogindServer{fake: fake, conn: conn}
	t.Cleanup(s.closeLocks)
	const (
		logindPath  = dbus.ObjectPath("/org/freedesktop/login1")
		systemdPath = dbus.ObjectPath("/org/freedesktop/systemd1")
	)
	exports := []struct {
		v     any
		path  dbus.ObjectPath
		iface string
	}{
		{logindManager{s}, logindPath, "org.freedesktop.login1.Manager"},
		{logindProperties{s}, logindPath, "org.freedesktop.DBus.Properties"},
		{systemdManager{s}, systemdPath, "org.freedesktop.systemd1.Manager"},
	}
	for _, e := range exports {
		if err := conn.Export(e.v, e.path, e.iface); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"org.freedesktop.login1", "org.freedesktop.systemd1"} {
		if reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("owning %s: %v, %v", name, reply, err)
		}
	}
	// Forward the fake's announcements as signals.
	own, err := fake.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	events, err := own.PrepareForShutdown(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for active := range events {
			_ = conn.Emit(logindPath, "org.freedesktop.login1.Manager.PrepareForShutdown", active)
		}
	}()
	t.Cleanup(func() {
		_ = own.Close()
		<-done
	})
	return s
}

// StartShutdown implements LogindServer.
func (s *busLogindServer) StartShutdown() { s.fake.StartShutdown() }

// CancelShutdown implements LogindServer.
func (s *busLogindServer) CancelShutdown() { s.fake.CancelShutdown() }

// Locks implements LogindServer. No Inhibit call is in flight, so every
// reply carrying a lock was sent: the server's copies of the write ends can
// be closed, and a lock whose read end then sees end of file is released.
func (s *busLogindServer) Locks() []systemd.InhibitRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var held []systemd.InhibitRequest
	var kept []*busLock
	for _, l := range s.locks {
		if l.write != nil {
			_ = l.write.Close()
			l.write = nil
		}
		if released(l.read) {
			_ = l.read.Close()
			continue
		}
		kept = append(kept, l)
		held = append(held, l.req)
	}
	s.locks = kept
	return held
}

// released reports whether every write end of the FIFO read reads from was
// closed. The deadline lies ahead because Go checks an expired one before
// it reads.
func released(read *os.File) bool {
	if err := read.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		return false
	}
	_, err := read.Read(make([]byte, 1))
	return errors.Is(err, io.EOF)
}

// closeLocks closes the server's ends of every lock.
func (s *busLogindServer) closeLocks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.locks {
		if l.write != nil {
			_ = l.write.Close()
		}
		_ = l.read.Close()
	}
	s.locks = nil
}

// logindManager is org.freedesktop.login1.Manager.
type logindManager struct{ s *busLogindServer }

// Inhibit is logind's method: it returns the write end of a new lock.
func (m logindManager) Inhibit(what, who, why, mode string) (dbus.UnixFD, *dbus.Error) {
	read, write, err := os.Pipe()
	if err != nil {
		return 0, dbus.MakeFailedError(err)
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	m.s.locks = append(m.s.locks, &busLock{
		req:   systemd.InhibitRequest{What: what, Who: who, Why: why, Mode: mode},
		read:  read,
		write: write,
	})
	return dbus.UnixFD(write.Fd()), nil
}

// logindProperties is org.freedesktop.DBus.Properties of logind's manager.
type logindProperties struct{ s *busLogindServer }

// Get answers InhibitDelayMaxUSec from the fake.
func (p logindProperties) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	if iface != "org.freedesktop.login1.Manager" || name != "InhibitDelayMaxUSec" {
		return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{name})
	}
	conn, err := p.s.fake.Dial(context.Background())
	if err != nil {
		return dbus.Variant{}, dbus.MakeFailedError(err)
	}
	defer conn.Close()
	d, err := conn.InhibitDelayMax(context.Background())
	if err != nil {
		return dbus.Variant{}, dbus.MakeFailedError(err)
	}
	return dbus.MakeVariant(uint64(d.Microseconds())), nil
}

// systemdManager is org.freedesktop.systemd1.Manager, KillUnit only.
type systemdManager struct{ s *busLogindServer }

// KillUnit reloads the fake when systemd-logind gets SIGHUP.
func (m systemdManager) KillUnit(unit, whom string, signal int32) *dbus.Error {
	if unit != "systemd-logind.service" || signal != int32(syscall.SIGHUP) {
		return dbus.NewError("org.freedesktop.DBus.Error.InvalidArgs", []any{"only SIGHUP to systemd-logind.service is faked"})
	}
	if err := m.s.fake.Reload(); err != nil {
		return dbus.MakeFailedError(err)
	}
	return nil
}
