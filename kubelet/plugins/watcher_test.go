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
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2/ktesting"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	testingclock "k8s.io/utils/clock/testing"
)

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

func TestRetriesSocketWhosePluginListensLate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "late.sock")
	h := &fakeHandler{}
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: h}, MinBackoff: time.Second})
	listen := bindOnly(t, path)
	w.waitForLog(t, "Plugin socket not listening yet", path, "connection refused", `retryIn="50ms"`)
	waitFor(t, "a retry timer", w.clock.HasWaiters)

	plugin := newFakePlugin(csiInfo("late.example.com")).serve(t, listen())
	w.clock.Step(listenRetry)
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
	w.waitForLog(t, "Plugin socket not listening yet", path, `retryIn="50ms"`)
	// Still refused at the retry: now it is an error, logged once.
	steps := []struct {
		step time.Duration
		log  []string
	}{
		{listenRetry, []string{"ERROR", "Plugin registration failed", path, "nothing listens on the socket", "failures=2", `retryIn="2s"`}},
		{2 * time.Second, []string{"Plugin registration failed again", path, "failures=3", `retryIn="3s"`}},
		{3 * time.Second, []string{"Plugin registration failed again", path, "failures=4", `retryIn="3s"`}},
	}
	for _, s := range steps {
		waitFor(t, "a retry timer", w.clock.HasWaiters)
		w.clock.Step(s.step)
		w.waitForLog(t, s.log...)
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

func TestDirectoryBehindSymlink(t *testing.T) {
	target := filepath.Join(t.TempDir(), "target")
	if err := os.Mkdir(target, 0o750); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "reg")
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
	servePlugin(t, filepath.Join(target, "early.sock"), csiInfo("early.example.com"))
	w := startWatcher(t, Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: &fakeHandler{}}})
	servePlugin(t, filepath.Join(dir, "late.sock"), csiInfo("late.example.com"))
	got := w.waitForPlugins(t, "early.example.com", "late.example.com")
	for _, p := range got {
		if filepath.Dir(p.Socket) != dir {
			t.Errorf("Plugin %q at %s, want it under %s", p.Name, p.Socket, dir)
		}
	}
}

// TestRescanFindsWhatEventsMissed reads the directory again, as after an
// inotify overflow, without reading the events in between.
func TestRescanFindsWhatEventsMissed(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	dir := t.TempDir()
	h := &fakeHandler{}
	w, err := New(Config{Dir: dir, Handlers: map[string]Handler{TypeCSI: h}, Clock: testingclock.NewFakeClock(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fsw.Close() }()
	defer w.ops.Wait()
	defer cancel()
	l := &loop{w: w, fsw: fsw, sockets: map[string]*socket{}}
	// pump does Run's loop's work until cond holds.
	pump := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(waitTimeout)
		for !cond() {
			select {
			case f := <-w.work:
				f()
			case <-deadline:
				t.Fatalf("Waiting for %s", what)
			}
		}
	}
	names := func() []string {
		var out []string
		for _, p := range w.Plugins() {
			out = append(out, p.Name)
		}
		return out
	}

	a := servePlugin(t, filepath.Join(dir, "a.sock"), csiInfo("a.example.com"))
	if err := l.rescan(ctx); err != nil {
		t.Fatal(err)
	}
	pump("a to register", func() bool { return cmp.Equal(names(), []string{"a.example.com"}) })
	a.stop(t)
	servePlugin(t, filepath.Join(dir, "b.sock"), csiInfo("b.example.com"))
	if err := l.rescan(ctx); err != nil {
		t.Fatal(err)
	}
	pump("b alone", func() bool { return cmp.Equal(names(), []string{"b.example.com"}) })
	// Two sockets: their calls come in any order.
	want := []string{"deregister a.example.com", "register a.example.com", "register b.example.com"}
	if diff := cmp.Diff(want, h.got(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("Handler calls (-want +got):\n%s", diff)
	}
}
