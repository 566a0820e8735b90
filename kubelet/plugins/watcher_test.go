package plugins

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
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

func TestRegistersPluginsFoundAtStartAndCreatedLater(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reg")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	early := servePlugin(t, filepath.Join(dir, "early.sock"), csiInfo("early.example.com"))
	csi, dev := &fakeHandler{}, &fakeHandler{}
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: csi, TypeDevice: dev}})

	// A plugin in a subdirectory created after the start, with its own
	// endpoint, as device plugins have.
	sub := filepath.Join(dir, "vendor")
	if err := os.Mkdir(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	late := servePlugin(t, filepath.Join(sub, "late.sock"), &registerapi.PluginInfo{
		Type: TypeDevice, Name: "example.com/gpu", Endpoint: "/var/lib/kubelet/device-plugins/gpu.sock",
		SupportedVersions: []string{"v1beta1"},
	})

	got := w.waitForPlugins(t, "early.example.com", "example.com/gpu")
	want := []Plugin{
		{Type: TypeCSI, Name: "early.example.com", Endpoint: filepath.Join(dir, "early.sock"), Versions: []string{"1.0.0"}, Socket: filepath.Join(dir, "early.sock")},
		{Type: TypeDevice, Name: "example.com/gpu", Endpoint: "/var/lib/kubelet/device-plugins/gpu.sock", Versions: []string{"v1beta1"}, Socket: filepath.Join(sub, "late.sock")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Plugins (-want +got):\n%s", diff)
	}
	for _, p := range []*fakePlugin{early, late} {
		if s := p.status(t); !s.PluginRegistered || s.Error != "" {
			t.Errorf("Plugin %q was told %v, want registered", p.info.Name, s)
		}
	}
	if diff := cmp.Diff([]string{"register early.example.com"}, csi.got()); diff != "" {
		t.Errorf("CSI handler calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"register example.com/gpu"}, dev.got()); diff != "" {
		t.Errorf("device handler calls (-want +got):\n%s", diff)
	}
}

func TestRegistersAgainAfterRestart(t *testing.T) {
	dir := t.TempDir()
	plugin := servePlugin(t, filepath.Join(dir, "p.sock"), csiInfo("p.example.com"))
	first := &fakeHandler{}
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: first}})
	w.waitForPlugins(t, "p.example.com")
	plugin.status(t)
	w.stop()

	second := &fakeHandler{}
	w = startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: second}})
	w.waitForPlugins(t, "p.example.com")
	if s := plugin.status(t); !s.PluginRegistered {
		t.Errorf("After the restart, the plugin was told %v, want registered", s)
	}
	if diff := cmp.Diff([]string{"register p.example.com"}, second.got()); diff != "" {
		t.Errorf("Handler calls after the restart (-want +got):\n%s", diff)
	}
	// Stopping the watcher does not deregister: berth is going down.
	if diff := cmp.Diff([]string{"register p.example.com"}, first.got()); diff != "" {
		t.Errorf("Handler calls before the restart (-want +got):\n%s", diff)
	}
}

func TestRemovedSocketDeregisters(t *testing.T) {
	dir := t.TempDir()
	h := &fakeHandler{}
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: h}})
	plugin := servePlugin(t, filepath.Join(dir, "p.sock"), csiInfo("p.example.com"))
	w.waitForPlugins(t, "p.example.com")
	plugin.stop(t)
	w.waitForPlugins(t)
	waitFor(t, "the deregistration", func() bool { return len(h.got()) == 2 })
	if diff := cmp.Diff([]string{"register p.example.com", "deregister p.example.com"}, h.got()); diff != "" {
		t.Errorf("Handler calls (-want +got):\n%s", diff)
	}
	w.waitForLog(t, "Deregistered plugin", filepath.Join(dir, "p.sock"), "socket removed")
}

func TestReplacedSocketDeregistersThenRegisters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.sock")
	h := &fakeHandler{}
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: h}})
	old := servePlugin(t, path, csiInfo("old.example.com"))
	w.waitForPlugins(t, "old.example.com")

	// The plugin restarts: a new socket at the same path.
	old.stop(t)
	servePlugin(t, path, csiInfo("new.example.com"))
	w.waitForPlugins(t, "new.example.com")
	want := []string{"register old.example.com", "deregister old.example.com", "register new.example.com"}
	if diff := cmp.Diff(want, h.got()); diff != "" {
		t.Errorf("Handler calls (-want +got):\n%s", diff)
	}
}

func TestReplacedSocketWithoutRemovalEvent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.sock")
	h := &fakeHandler{}
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: h}})
	servePlugin(t, path, csiInfo("old.example.com"))
	w.waitForPlugins(t, "old.example.com")

	// A new socket renamed over the old one: only a creation event.
	tmp := filepath.Join(t.TempDir(), "new.sock")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	newFakePlugin(csiInfo("new.example.com")).serve(t, ln)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	w.waitForPlugins(t, "new.example.com")
	want := []string{"register old.example.com", "deregister old.example.com", "register new.example.com"}
	if diff := cmp.Diff(want, h.got()); diff != "" {
		t.Errorf("Handler calls (-want +got):\n%s", diff)
	}
}

func TestRefusedPluginIsTold(t *testing.T) {
	tests := []struct {
		name        string
		info        *registerapi.PluginInfo
		handler     *fakeHandler
		wantMessage string
		wantCalls   []string
	}{
		{
			name:        "unknown type",
			info:        &registerapi.PluginInfo{Type: "FancyPlugin", Name: "fancy", SupportedVersions: []string{"1"}},
			handler:     &fakeHandler{},
			wantMessage: `no handler for plugin type "FancyPlugin"`,
		},
		{
			name:        "empty name",
			info:        csiInfo(""),
			handler:     &fakeHandler{},
			wantMessage: "gave no name",
		},
		{
			name:        "no versions",
			info:        &registerapi.PluginInfo{Type: TypeCSI, Name: "p.example.com"},
			handler:     &fakeHandler{},
			wantMessage: "gave no supported versions",
		},
		{
			name:        "validation fails",
			info:        csiInfo("p.example.com"),
			handler:     &fakeHandler{validateErr: errors.New("version 1.0.0 is too old")},
			wantMessage: "plugin validation failed: version 1.0.0 is too old",
		},
		{
			name:        "registration fails",
			info:        csiInfo("p.example.com"),
			handler:     &fakeHandler{registerErr: errors.New("NodeGetInfo: deadline exceeded")},
			wantMessage: "plugin registration failed: NodeGetInfo: deadline exceeded",
			wantCalls:   []string{"register p.example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "p.sock")
			w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: tt.handler}})
			plugin := servePlugin(t, path, tt.info)
			s := plugin.status(t)
			if s.PluginRegistered || !strings.Contains(s.Error, tt.wantMessage) {
				t.Errorf("The plugin was told %v, want not registered with an error containing %q", s, tt.wantMessage)
			}
			w.waitForLog(t, "Plugin registration failed", path, tt.wantMessage)
			if got := w.Plugins(); len(got) != 0 {
				t.Errorf("Plugins = %v, want none", got)
			}
			if diff := cmp.Diff(tt.wantCalls, tt.handler.got()); diff != "" {
				t.Errorf("Handler calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNotifyFailureDeregisters(t *testing.T) {
	dir := t.TempDir()
	h := &fakeHandler{}
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: h}})
	plugin := newFakePlugin(csiInfo("p.example.com"))
	plugin.notifyErr = errors.New("not now")
	plugin.serveAt(t, filepath.Join(dir, "p.sock"))
	w.waitForLog(t, "Plugin registration failed", "p.sock", "deregistered again", "not now")
	if diff := cmp.Diff([]string{"register p.example.com", "deregister p.example.com"}, h.got()); diff != "" {
		t.Errorf("Handler calls (-want +got):\n%s", diff)
	}
	if got := w.Plugins(); len(got) != 0 {
		t.Errorf("Plugins = %v, want none", got)
	}
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

func TestBadSocketsDoNotBlockGoodOnes(t *testing.T) {
	dir := t.TempDir()
	// Long enough that the silent socket's call is still pending when the
	// good plugin registers.
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: &fakeHandler{}}, Timeout: time.Hour})
	listenRaw(t, filepath.Join(dir, "silent.sock"), silent)
	listenRaw(t, filepath.Join(dir, "junk.sock"), junk)
	good := servePlugin(t, filepath.Join(dir, "good.sock"), csiInfo("good.example.com"))
	w.waitForPlugins(t, "good.example.com")
	if s := good.status(t); !s.PluginRegistered {
		t.Errorf("The good plugin was told %v, want registered", s)
	}
	w.waitForLog(t, "Plugin registration failed", filepath.Join(dir, "junk.sock"), "GetInfo")
	// The junk socket is retried later.
	waitFor(t, "a retry timer", w.clock.HasWaiters)
}

func TestSilentSocketTimesOut(t *testing.T) {
	dir := t.TempDir()
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: &fakeHandler{}}, Timeout: 100 * time.Millisecond})
	listenRaw(t, filepath.Join(dir, "silent.sock"), silent)
	w.waitForLog(t, "Plugin registration failed", filepath.Join(dir, "silent.sock"), "GetInfo (timeout 100ms)")
	waitFor(t, "a retry timer", w.clock.HasWaiters)
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

func TestRetriesSocketWhosePluginListensLate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "late.sock")
	h := &fakeHandler{}
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: h}, MinBackoff: time.Second})
	listen := bindOnly(t, path)
	w.waitForLog(t, "Plugin socket not listening yet", path, "connection refused", `retryIn="1s"`)
	waitFor(t, "a retry timer", w.clock.HasWaiters)

	plugin := newFakePlugin(csiInfo("late.example.com")).serve(t, listen())
	w.clock.Step(time.Second)
	w.waitForPlugins(t, "late.example.com")
	if s := plugin.status(t); !s.PluginRegistered {
		t.Errorf("The plugin was told %v, want registered", s)
	}
}

func TestRetriesStaleSocketWithBackoff(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stale.sock")
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: &fakeHandler{}}, MinBackoff: time.Second, MaxBackoff: 3 * time.Second})
	bindOnly(t, path)
	w.waitForLog(t, "Plugin socket not listening yet", path, `retryIn="1s"`)
	// Still refused at the retry: now it is an error, logged once.
	wantLogs := [][]string{
		{"ERROR", "Plugin registration failed", path, "nothing listens on the socket", `retryIn="2s"`},
		{"Plugin registration failed again", path, `retryIn="3s"`},
		{"Plugin registration failed again", path, `failures=4`, `retryIn="3s"`},
	}
	step := time.Second
	for _, want := range wantLogs {
		waitFor(t, "a retry timer", w.clock.HasWaiters)
		w.clock.Step(step)
		w.waitForLog(t, want...)
		step = 3 * time.Second
	}
}

func TestIgnoresFilesAndDotSockets(t *testing.T) {
	dir := t.TempDir()
	h := &fakeHandler{}
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: h}})
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	servePlugin(t, filepath.Join(dir, ".hidden.sock"), csiInfo("hidden.example.com"))
	if err := os.Mkdir(filepath.Join(dir, ".cache"), 0o750); err != nil {
		t.Fatal(err)
	}
	servePlugin(t, filepath.Join(dir, ".cache", "cached.sock"), csiInfo("cached.example.com"))
	// Events come in order: once this one registers, the others were
	// looked at.
	servePlugin(t, filepath.Join(dir, "p.sock"), csiInfo("p.example.com"))
	w.waitForPlugins(t, "p.example.com")
	if diff := cmp.Diff([]string{"register p.example.com"}, h.got()); diff != "" {
		t.Errorf("Handler calls (-want +got):\n%s", diff)
	}
}

func TestRemovedDirectoryIsCreatedAgain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reg")
	h := &fakeHandler{}
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: h}})
	p := servePlugin(t, filepath.Join(dir, "p.sock"), csiInfo("p.example.com"))
	w.waitForPlugins(t, "p.example.com")
	// The kernel tells the directory's removal once nothing holds it: the
	// plugin's listener holds its socket, which holds the directory.
	p.srv.Stop()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	w.waitForPlugins(t)
	waitFor(t, "the directory to be back", func() bool {
		_, err := os.Stat(dir)
		return err == nil
	})
	servePlugin(t, filepath.Join(dir, "q.sock"), csiInfo("q.example.com"))
	w.waitForPlugins(t, "q.example.com")
}

func TestBackoff(t *testing.T) {
	w, err := New(Config{Dir: "/r", Clock: testingclock.NewFakeClock(time.Time{}), MinBackoff: time.Second, MaxBackoff: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, w.backoff(n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Time{})
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "valid", cfg: Config{Dir: "/var/lib/kubelet/plugins_registry", Clock: clk}},
		{name: "relative dir", cfg: Config{Dir: "plugins_registry", Clock: clk}, wantErr: "not an absolute path"},
		{name: "nil handler", cfg: Config{Dir: "/r", Handlers: map[string]Handler{TypeCSI: nil}, Clock: clk}, wantErr: "handler of \"CSIPlugin\" is nil"},
		{name: "negative timeout", cfg: Config{Dir: "/r", Timeout: -time.Second, Clock: clk}, wantErr: "Timeout -1s is negative"},
		{name: "backoffs reversed", cfg: Config{Dir: "/r", MinBackoff: time.Minute, MaxBackoff: time.Second, Clock: clk}, wantErr: "above MaxBackoff"},
		{name: "no clock", cfg: Config{Dir: "/r"}, wantErr: "Clock is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDirs(t *testing.T) {
	if got := RegistryDir("/var/lib/kubelet"); got != "/var/lib/kubelet/plugins_registry" {
		t.Errorf("RegistryDir = %q", got)
	}
	if got := PluginsDir("/var/lib/kubelet"); got != "/var/lib/kubelet/plugins" {
		t.Errorf("PluginsDir = %q", got)
	}
}

func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: &fakeHandler{}}})
	servePlugin(t, filepath.Join(dir, "good.sock"), csiInfo("good.example.com"))
	fancy := servePlugin(t, filepath.Join(dir, "fancy.sock"), &registerapi.PluginInfo{Type: "FancyPlugin", Name: "fancy", SupportedVersions: []string{"1"}})
	fancy.status(t)
	w.waitForPlugins(t, "good.example.com")

	reg := prometheus.NewRegistry()
	reg.MustRegister(w.Collector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got = append(got, fmt.Sprintf("%s{%s,%s} %g", f.GetName(), filepath.Base(labels["socket_path"]), labels["state"], m.GetGauge().GetValue()))
		}
	}
	slices.Sort(got)
	want := []string{
		"plugin_manager_total_plugins{fancy.sock,desired_state_of_world} 1",
		"plugin_manager_total_plugins{good.sock,actual_state_of_world} 1",
		"plugin_manager_total_plugins{good.sock,desired_state_of_world} 1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}
