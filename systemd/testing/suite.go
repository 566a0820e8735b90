package testing

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthnode/berth/systemd"
)

// LogindServer plays logind's side of RunLogindSuite.
type LogindServer interface {
	// StartShutdown announces a shutdown: PrepareForShutdown(true).
	StartShutdown()
	// CancelShutdown announces its cancellation: PrepareForShutdown(false).
	CancelShutdown()
	// Locks returns the inhibitor locks held, in the order taken. The
	// suite calls it only when no Inhibit call is in flight.
	Locks() []systemd.InhibitRequest
}

// LogindEnv is one logind under test: a fresh one, with logind's default
// InhibitDelayMaxSec (DefaultInhibitDelayMax), no locks held, and drop-ins
// read from ConfDir on reload.
type LogindEnv struct {
	// Dial connects a client, the systemd.Logind under test.
	Dial func(ctx context.Context) (systemd.Logind, error)
	// Server plays logind.
	Server LogindServer
	// ConfDir is logind's drop-in directory, empty at first.
	ConfDir string
}

// suiteTimeout bounds every wait of the suite: D-Bus delivers
// asynchronously.
const suiteTimeout = 10 * time.Second

// RunLogindSuite checks the behaviour package systemd relies on from a
// systemd.Logind. newEnv returns a fresh logind for each subtest.
func RunLogindSuite(t *testing.T, newEnv func(t *testing.T) LogindEnv) {
	t.Run("inhibit delay max", func(t *testing.T) {
		_, conn := dialSuite(t, newEnv)
		got, err := conn.InhibitDelayMax(suiteContext(t))
		if err != nil || got != DefaultInhibitDelayMax {
			t.Errorf("InhibitDelayMax() = %v, %v; want %v", got, err, DefaultInhibitDelayMax)
		}
	})
	t.Run("reload applies the drop-in", func(t *testing.T) {
		env, conn := dialSuite(t, newEnv)
		ctx := suiteContext(t)
		if err := systemd.WriteLogindDropIn(env.ConfDir, 90500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := conn.ReloadConfig(ctx); err != nil {
			t.Fatalf("ReloadConfig() error: %v", err)
		}
		eventually(t, "InhibitDelayMax is 91s (rounded up)", func() bool {
			got, err := conn.InhibitDelayMax(ctx)
			return err == nil && got == 91*time.Second
		})
	})
	t.Run("lock held until closed", func(t *testing.T) {
		env, conn := dialSuite(t, newEnv)
		req := systemd.InhibitRequest{What: "shutdown", Who: "suite", Why: "testing", Mode: "delay"}
		lock, err := conn.Inhibit(suiteContext(t), req)
		if err != nil {
			t.Fatalf("Inhibit() error: %v", err)
		}
		if diff := cmp.Diff([]systemd.InhibitRequest{req}, env.Server.Locks()); diff != "" {
			t.Errorf("locks while held (-want +got):\n%s", diff)
		}
		if err := lock.Close(); err != nil {
			t.Fatalf("closing the lock: %v", err)
		}
		eventually(t, "no lock held", func() bool { return len(env.Server.Locks()) == 0 })
	})
	t.Run("prepare for shutdown and its cancellation", func(t *testing.T) {
		env, conn := dialSuite(t, newEnv)
		events, err := conn.PrepareForShutdown(suiteContext(t))
		if err != nil {
			t.Fatalf("PrepareForShutdown() error: %v", err)
		}
		env.Server.StartShutdown()
		expectEvent(t, events, true)
		env.Server.CancelShutdown()
		expectEvent(t, events, false)
	})
	t.Run("close ends the subscription", func(t *testing.T) {
		_, conn := dialSuite(t, newEnv)
		events, err := conn.PrepareForShutdown(suiteContext(t))
		if err != nil {
			t.Fatalf("PrepareForShutdown() error: %v", err)
		}
		if err := conn.Close(); err != nil {
			t.Fatalf("Close() error: %v", err)
		}
		select {
		case _, ok := <-events:
			if ok {
				t.Errorf("got an event after Close; want the channel closed")
			}
		case <-time.After(suiteTimeout):
			t.Errorf("channel still open %v after Close", suiteTimeout)
		}
	})
	t.Run("every connection sees the shutdown", func(t *testing.T) {
		env, first := dialSuite(t, newEnv)
		second, err := env.Dial(suiteContext(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = second.Close() })
		var chans []<-chan bool
		for _, conn := range []systemd.Logind{first, second} {
			ch, err := conn.PrepareForShutdown(suiteContext(t))
			if err != nil {
				t.Fatal(err)
			}
			chans = append(chans, ch)
		}
		env.Server.StartShutdown()
		for _, ch := range chans {
			expectEvent(t, ch, true)
		}
	})
}

// dialSuite returns a fresh environment and a client connected to it.
func dialSuite(t *testing.T, newEnv func(t *testing.T) LogindEnv) (LogindEnv, systemd.Logind) {
	t.Helper()
	env := newEnv(t)
	conn, err := env.Dial(suiteContext(t))
	if err != nil {
		t.Fatalf("Dial() error: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return env, conn
}

// suiteContext is a context bounded by suiteTimeout.
func suiteContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	t.Cleanup(cancel)
	return ctx
}

// expectEvent waits for the next event and checks it.
func expectEvent(t *testing.T, events <-chan bool, want bool) {
	t.Helper()
	select {
	case got, ok := <-events:
		if !ok || got != want {
			t.Errorf("PrepareForShutdown event = %v (open %v); want %v", got, ok, want)
		}
	case <-time.After(suiteTimeout):
		t.Errorf("no PrepareForShutdown(%v) within %v", want, suiteTimeout)
	}
}

// eventually polls cond until it holds or suiteTimeout passes: the real
// logind applies a reload and notices a released lock asynchronously.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(suiteTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v", what, suiteTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
