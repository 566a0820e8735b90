package testing

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthnode/berth/systemd"
)

// DefaultInhibitDelayMax is logind's InhibitDelayMaxSec when nothing
// configures it.
const DefaultInhibitDelayMax = 5 * time.Second

// subscriptionBuffer is how many PrepareForShutdown events a subscription
// holds unread; more are a bug in the test.
const subscriptionBuffer = 64

// FakeLogind is a systemd-logind that keeps state: the inhibitor locks
// held, the connections and their PrepareForShutdown subscriptions, and
// InhibitDelayMaxSec as logind.conf and its drop-ins in a directory set it
// at the last reload. Its Dial fits systemd.ShutdownConfig.Dial; the other
// methods play logind's side. Safe for concurrent use.
type FakeLogind struct {
	confDir string

	mu       sync.Mutex
	base     time.Duration
	delayMax time.Duration
	reloads  int
	dialErr  error
	locks    []*fakeLock
	conns    []*fakeLogindConn
	// preparing is whether a shutdown was announced and not cancelled.
	preparing bool
	// changed is closed and replaced on every change of state.
	changed chan struct{}
}

// NewFakeLogind returns a logind with the default InhibitDelayMaxSec that
// reads drop-ins from confDir ("" for none) when reloaded.
func NewFakeLogind(confDir string) *FakeLogind {
	return &FakeLogind{
		confDir:  confDir,
		base:     DefaultInhibitDelayMax,
		delayMax: DefaultInhibitDelayMax,
		changed:  make(chan struct{}),
	}
}

// notifyLocked signals a change of state; f.mu is held.
func (f *FakeLogind) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// SetInhibitDelayMax sets InhibitDelayMaxSec as logind.conf has it, below
// the drop-ins, and applies it as a reload would.
func (f *FakeLogind) SetInhibitDelayMax(d time.Duration) error {
	f.mu.Lock()
	f.base = d
	f.mu.Unlock()
	return f.Reload()
}

// FailDial makes Dial fail with err; nil lets it succeed again.
func (f *FakeLogind) FailDial(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dialErr = err
}

// Dial opens a connection to the fake logind.
func (f *FakeLogind) Dial(context.Context) (systemd.Logind, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dialErr != nil {
		return nil, f.dialErr
	}
	c := &fakeLogindConn{f: f}
	f.conns = append(f.conns, c)
	f.notifyLocked()
	return c, nil
}

// Reload rereads the configuration as logind does on SIGHUP: the last
// InhibitDelayMaxSec= among the drop-ins, in file name order, wins over
// logind.conf's.
func (f *FakeLogind) Reload() error {
	delay, err := readDropIns(f.confDir)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		return err
	}
	f.reloads++
	f.delayMax = f.base
	if delay > 0 {
		f.delayMax = delay
	}
	f.notifyLocked()
	return nil
}

// readDropIns returns the InhibitDelayMaxSec the drop-ins in dir set, or 0.
func readDropIns(dir string) (time.Duration, error) {
	if dir == "" {
		return 0, nil
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return 0, err
	}
	slices.Sort(names)
	var delay time.Duration
	for _, name := range names {
		d, err := readDropIn(name)
		if err != nil {
			return 0, err
		}
		if d > 0 {
			delay = d
		}
	}
	return delay, nil
}

// readDropIn returns the InhibitDelayMaxSec of one logind drop-in, or 0.
func readDropIn(name string) (time.Duration, error) {
	file, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	var delay time.Duration
	section := ""
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Login]" && strings.HasPrefix(line, "InhibitDelayMaxSec="):
			value := strings.TrimPrefix(line, "InhibitDelayMaxSec=")
			seconds, err := strconv.ParseUint(value, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("%s: InhibitDelayMaxSec=%q: only whole seconds are supported by the fake", name, value)
			}
			delay = time.Duration(seconds) * time.Second
		}
	}
	return delay, scanner.Err()
}

// Reloads counts the reloads.
func (f *FakeLogind) Reloads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloads
}

// Locks returns the inhibitor locks held, in the order taken.
func (f *FakeLogind) Locks() []systemd.InhibitRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []systemd.InhibitRequest
	for _, l := range f.locks {
		out = append(out, l.req)
	}
	return out
}

// Subscribers counts the open PrepareForShutdown subscriptions.
func (f *FakeLogind) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.conns {
		n += len(c.subs)
	}
	return n
}

// StartShutdown announces a shutdown: PrepareForShutdown(true).
func (f *FakeLogind) StartShutdown() { f.announce(true) }

// CancelShutdown announces that the shutdown was cancelled:
// PrepareForShutdown(false).
func (f *FakeLogind) CancelShutdown() { f.announce(false) }

func (f *FakeLogind) announce(active bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.preparing = active
	for _, c := range f.conns {
		for _, ch := range c.subs {
			select {
			case ch <- active:
			default:
				// The buffer is full: a test that never reads.
			}
		}
	}
	f.notifyLocked()
}

// ShutdownHeld reports whether an announced shutdown is held up by a delay
// lock; logind goes on with it once none is (or InhibitDelayMaxSec passed,
// which the fake does not time).
func (f *FakeLogind) ShutdownHeld() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.preparing && slices.ContainsFunc(f.locks, func(l *fakeLock) bool {
		return l.req.Mode == "delay" && strings.Contains(":"+l.req.What+":", ":shutdown:")
	})
}

// Disconnect drops every connection, as a restart of logind or of D-Bus
// does: subscriptions end. Locks stay held, as logind keeps them across a
// restart.
func (f *FakeLogind) Disconnect() {
	f.mu.Lock()
	conns := slices.Clone(f.conns)
	f.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// Wait returns once cond holds, checking it after every change of state,
// or an error when ctx ends first. cond may call f's methods.
func (f *FakeLogind) Wait(ctx context.Context, cond func() bool) error {
	for {
		f.mu.Lock()
		changed := f.changed
		f.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(errors.New("fake logind: condition not reached"), ctx.Err())
		case <-changed:
		}
	}
}

// fakeLogindConn is one connection to a FakeLogind.
type fakeLogindConn struct {
	f *FakeLogind
	// subs and closed are guarded by f.mu.
	subs   []chan bool
	closed bool
}

var _ systemd.Logind = (*fakeLogindConn)(nil)

// errClosed is returned by a closed connection.
var errClosed = errors.New("fake logind: connection closed")

func (c *fakeLogindConn) InhibitDelayMax(context.Context) (time.Duration, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.closed {
		return 0, errClosed
	}
	return c.f.delayMax, nil
}

func (c *fakeLogindConn) Inhibit(_ context.Context, req systemd.InhibitRequest) (io.Closer, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	if req.Mode != "delay" && req.Mode != "block" {
		return nil, fmt.Errorf("fake logind: invalid inhibitor mode %q", req.Mode)
	}
	l := &fakeLock{f: c.f, req: req}
	c.f.locks = append(c.f.locks, l)
	c.f.notifyLocked()
	return l, nil
}

func (c *fakeLogindConn) PrepareForShutdown(context.Context) (<-chan bool, error) {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	ch := make(chan bool, subscriptionBuffer)
	c.subs = append(c.subs, ch)
	c.f.notifyLocked()
	return ch, nil
}

func (c *fakeLogindConn) ReloadConfig(context.Context) error {
	c.f.mu.Lock()
	closed := c.closed
	c.f.mu.Unlock()
	if closed {
		return errClosed
	}
	return c.f.Reload()
}

func (c *fakeLogindConn) Close() error {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for _, ch := range c.subs {
		close(ch)
	}
	c.subs = nil
	c.f.conns = slices.DeleteFunc(c.f.conns, func(o *fakeLogindConn) bool { return o == c })
	c.f.notifyLocked()
	return nil
}

// fakeLock is an inhibitor lock of a FakeLogind.
type fakeLock struct {
	f   *FakeLogind
	req systemd.InhibitRequest
}

// Close releases the lock; closing it again does nothing.
func (l *fakeLock) Close() error {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	l.f.locks = slices.DeleteFunc(l.f.locks, func(o *fakeLock) bool { return o == l })
	l.f.notifyLocked()
	return nil
}
