package plugins

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	testingclock "k8s.io/utils/clock/testing"
)

// waitTimeout bounds every wait of these tests for the watcher.
const waitTimeout = 20 * time.Second

// fakePlugin serves the Registration service on a Unix socket, as a CSI
// driver's node-driver-registrar or a device plugin does.
type fakePlugin struct {
	registerapi.UnimplementedRegistrationServer
	info      *registerapi.PluginInfo
	notifyErr error
	statuses  chan *registerapi.RegistrationStatus
	srv       *grpc.Server
	// path is where servePlugin put the socket.
	path string
}

func (f *fakePlugin) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return f.info, nil
}

func (f *fakePlugin) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	f.statuses <- s
	return &registerapi.RegistrationStatusResponse{}, f.notifyErr
}

// newFakePlugin returns a plugin that answers info, not serving yet.
func newFakePlugin(info *registerapi.PluginInfo) *fakePlugin {
	return &fakePlugin{info: info, statuses: make(chan *registerapi.RegistrationStatus, 100)}
}

// serve serves f on ln until the test ends or stop.
func (f *fakePlugin) serve(t *testing.T, ln net.Listener) *fakePlugin {
	t.Helper()
	f.srv = grpc.NewServer()
	registerapi.RegisterRegistrationServer(f.srv, f)
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(f.srv.Stop)
	return f
}

// listenAt listens on a Unix socket at path. The socket appears there
// listening already: made under a dot-name the watcher ignores, then
// renamed. (A socket that appears before it listens is retried later; see
// TestRetriesSocketWhosePluginListensLate.)
func listenAt(t *testing.T, path string) net.Listener {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	t.Cleanup(func() { _ = ln.Close() })
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveAt serves f at path.
func (f *fakePlugin) serveAt(t *testing.T, path string) *fakePlugin {
	t.Helper()
	f.path = path
	return f.serve(t, listenAt(t, path))
}

// servePlugin serves a plugin answering info at path.
func servePlugin(t *testing.T, path string, info *registerapi.PluginInfo) *fakePlugin {
	t.Helper()
	return newFakePlugin(info).serveAt(t, path)
}

// stop stops the plugin and removes its socket.
func (f *fakePlugin) stop(t *testing.T) {
	t.Helper()
	f.srv.Stop()
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
}

// status waits for the next registration status the plugin is told.
func (f *fakePlugin) status(t *testing.T) *registerapi.RegistrationStatus {
	t.Helper()
	select {
	case s := <-f.statuses:
		return s
	case <-time.After(waitTimeout):
		t.Fatalf("The plugin %q was not told its registration status", f.info.Name)
		return nil
	}
}

func csiInfo(name string) *registerapi.PluginInfo {
	return &registerapi.PluginInfo{Type: TypeCSI, Name: name, SupportedVersions: []string{"1.0.0"}}
}

// fakeHandler records the calls it gets, as "register name" or
// "deregister name".
type fakeHandler struct {
	validateErr, registerErr error
	mu                       sync.Mutex
	calls                    []string
}

func (h *fakeHandler) Validate(Plugin) error { return h.validateErr }

func (h *fakeHandler) Register(_ context.Context, p Plugin) error {
	h.record("register " + p.Name)
	return h.registerErr
}

func (h *fakeHandler) Deregister(_ context.Context, p Plugin) { h.record("deregister " + p.Name) }

func (h *fakeHandler) record(c string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, c)
}

func (h *fakeHandler) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// testWatcher is a Watcher running in a test, with its log.
type testWatcher struct {
	*Watcher
	log   interface{ String() string }
	clock *testingclock.FakeClock
	stop  func()
}

// startWatcher runs a watcher of dir until the test ends or stop, after it
// has read dir.
func startWatcher(t *testing.T, cfg Config) *testWatcher {
	t.Helper()
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
	ctx := klog.NewContext(context.Background(), logger)
	clk := testingclock.NewFakeClock(time.Now())
	cfg.Clock = clk
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	waitFor(t, "the watcher to be healthy", func() bool { return w.Healthy() == nil })
	return &testWatcher{Watcher: w, log: logger.GetSink().(ktesting.Underlier).GetBuffer(), clock: clk, stop: stop}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, waitTimeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("Waiting for %s: %v", what, err)
	}
}

// waitForPlugins waits until the watcher has exactly the plugins named.
func (w *testWatcher) waitForPlugins(t *testing.T, names ...string) []Plugin {
	t.Helper()
	var got []Plugin
	waitFor(t, fmt.Sprintf("plugins %q", names), func() bool {
		got = w.Plugins()
		var gotNames []string
		for _, p := range got {
			gotNames = append(gotNames, p.Name)
		}
		return cmp.Equal(gotNames, names)
	})
	return got
}

// waitForLog waits until a log line contains every part.
func (w *testWatcher) waitForLog(t *testing.T, parts ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("a log line with %q", parts), func() bool {
		for _, line := range strings.Split(w.log.String(), "\n") {
			if containsAll(strings.ReplaceAll(line, `\"`, `"`), parts) {
				return true
			}
		}
		return false
	})
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// listenRaw accepts connections at path and hands each to serve, until
// the test ends.
func listenRaw(t *testing.T, path string, serve func(net.Conn)) {
	t.Helper()
	ln := listenAt(t, path)
	var (
		mu     sync.Mutex
		conns  []net.Conn
		served sync.WaitGroup
	)
	accepting := make(chan struct{})
	t.Cleanup(func() {
		_ = ln.Close()
		<-accepting
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		served.Wait()
	})
	go func() {
		defer close(accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			served.Add(1)
			go func() {
				defer served.Done()
				serve(c)
			}()
		}
	}()
}

// junk answers every connection with bytes that are not HTTP/2.
func junk(c net.Conn) {
	_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nthis is not a registration service\n"))
}

// silent reads what comes and never answers, until the connection closes.
func silent(c net.Conn) {
	buf := make([]byte, 1024)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// bindOnly creates a socket at path that does not listen yet, as a plugin
// between bind and listen (or one that died leaving its socket), and
// returns what starts listening on it.
func bindOnly(t *testing.T, path string) (listen func() net.Listener) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), path)
	t.Cleanup(func() { _ = f.Close() })
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	return func() net.Listener {
		t.Helper()
		if err := unix.Listen(fd, 16); err != nil {
			t.Fatal(err)
		}
		ln, err := net.FileListener(f)
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
}
