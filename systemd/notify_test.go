package systemd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/systemd"
	sdtesting "github.com/berthnode/berth/systemd/testing"
)

// waitContext bounds waits on fakes.
func waitContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNotifierMessages(t *testing.T) {
	tests := []struct {
		name string
		send func(*systemd.Notifier) error
		want string
	}{
		{name: "ready", send: func(n *systemd.Notifier) error { return n.Ready("Running") }, want: "READY=1\nSTATUS=Running"},
		{name: "ready without status", send: func(n *systemd.Notifier) error { return n.Ready("") }, want: "READY=1"},
		{name: "status on one line", send: func(n *systemd.Notifier) error { return n.Status("waiting for\n  kubeadm join") }, want: "STATUS=waiting for kubeadm join"},
		{name: "stopping", send: func(n *systemd.Notifier) error { return n.Stopping("SIGTERM") }, want: "STOPPING=1\nSTATUS=SIGTERM"},
		{name: "watchdog", send: (*systemd.Notifier).Watchdog, want: "WATCHDOG=1"},
		{name: "extend timeout", send: func(n *systemd.Notifier) error { return n.ExtendTimeout(90 * time.Second) }, want: "EXTEND_TIMEOUT_USEC=90000000"},
	}
	sockets := map[string]func(testing.TB) *sdtesting.NotifySocket{
		"path":     sdtesting.NewNotifySocket,
		"abstract": sdtesting.NewAbstractNotifySocket,
	}
	for kind, listen := range sockets {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				socket := listen(t)
				n, err := systemd.NewNotifier(socket.Addr())
				if err != nil {
					t.Fatal(err)
				}
				if err := tt.send(n); err != nil {
					t.Fatalf("send error: %v", err)
				}
				if _, err := socket.Wait(waitContext(t), func(sdtesting.NotifyState) bool { return len(socket.Messages()) > 0 }); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff([]string{tt.want}, socket.Messages()); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestNotifierState(t *testing.T) {
	socket := sdtesting.NewNotifySocket(t)
	n, err := systemd.NewNotifier(socket.Addr())
	if err != nil {
		t.Fatal(err)
	}
	for _, send := range []func() error{
		func() error { return n.Status("Starting") },
		func() error { return n.ExtendTimeout(time.Minute) },
		func() error { return n.Ready("Running") },
		n.Watchdog,
		n.Watchdog,
		func() error { return n.Stopping("Shutting down") },
	} {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	want := sdtesting.NotifyState{Ready: true, Stopping: true, Status: "Shutting down", WatchdogPings: 2, Extensions: []time.Duration{time.Minute}}
	got, err := socket.Wait(waitContext(t), func(s sdtesting.NotifyState) bool { return s.Stopping })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}

func TestNotifierWithoutSocket(t *testing.T) {
	n, err := systemd.NewNotifier("")
	if err != nil {
		t.Fatal(err)
	}
	if n.Enabled() {
		t.Errorf("Enabled() = true without a socket")
	}
	if err := n.Ready("Running"); err != nil {
		t.Errorf("Ready() without a socket = %v, want nil", err)
	}
	var none *systemd.Notifier
	if err := none.Watchdog(); err != nil {
		t.Errorf("Watchdog() on a nil Notifier = %v, want nil", err)
	}
}

func TestNotifierErrors(t *testing.T) {
	if _, err := systemd.NewNotifier("vsock:2:1234"); !errors.Is(err, systemd.ErrUnsupportedNotifySocket) {
		t.Errorf("NewNotifier(vsock) error = %v, want ErrUnsupportedNotifySocket", err)
	}
	n, err := systemd.NewNotifier(t.TempDir() + "/missing")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(""); err == nil {
		t.Errorf("Ready() to a missing socket = nil, want an error")
	}
	if err := n.ExtendTimeout(0); err == nil {
		t.Errorf("ExtendTimeout(0) = nil, want an error")
	}
}

func TestNotifierFromEnvironment(t *testing.T) {
	socket := sdtesting.NewNotifySocket(t)
	t.Setenv(systemd.NotifySocketEnv, socket.Addr())
	n, err := systemd.NotifierFromEnvironment()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(""); err != nil {
		t.Fatal(err)
	}
	if _, err := socket.Wait(waitContext(t), func(s sdtesting.NotifyState) bool { return s.Ready }); err != nil {
		t.Error(err)
	}

	t.Setenv(systemd.NotifySocketEnv, "")
	if n, err := systemd.NotifierFromEnvironment(); err != nil || n.Enabled() {
		t.Errorf("NotifierFromEnvironment() without $NOTIFY_SOCKET = enabled %v, %v; want disabled", n.Enabled(), err)
	}
}
