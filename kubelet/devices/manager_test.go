package devices

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	testclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/kubelet/plugins"
)

const testResource = "example.com/resource"

// shortDir returns a directory short enough for Unix socket paths.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// running is a manager whose Run goroutine a test stops.
type running struct {
	*Manager
	cancel context.CancelFunc
	done   chan error
}

func startManager(t *testing.T, dir string, clk *testclock.FakeClock) *running {
	t.Helper()
	m, err := New(Config{Dir: dir, Clock: clk, CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	r := &running{Manager: m, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	t.Cleanup(r.stop)
	waitFor(t, "registration socket", func() bool {
		c, err := net.Dial("unix", m.SocketPath())
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // a second stop returns at once
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// counts returns the capacity and allocatable of the test resource.
func counts(m *Manager) (int64, int64) {
	c, a := m.Resources()
	cq, aq := c[testResource], a[testResource]
	return cq.Value(), aq.Value()
}

func waitCounts(t *testing.T, m *Manager, capacity, allocatable int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("capacity %d, allocatable %d", capacity, allocatable), func() bool {
		c, a := counts(m)
		return c == capacity && a == allocatable
	})
}

func devicePod(uid, name string, n int64) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Name: name, Namespace: "default"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
			Limits: v1.ResourceList{testResource: *resource.NewQuantity(n, resource.DecimalSI)},
		}}}},
	}
}

func TestRegistrationAndListAndWatch(t *testing.T) {
	dir := shortDir(t)
	m := startManager(t, dir, testclock.NewFakeClock(time.Now()))
	p := newFakePlugin(t, dir, "fake.sock", testResource, "Dev-1", "Dev-2")
	p.start()
	if err := p.register(m.SocketPath(), nil); err != nil {
		t.Fatalf("Register: %v", err)
	}
	waitCounts(t, m.Manager, 2, 2)

	p.setHealth("Dev-2", pluginapi.Unhealthy)
	waitCounts(t, m.Manager, 2, 1)
	want := map[string][]*pluginapi.Device{testResource: {{ID: "Dev-1", Health: pluginapi.Healthy}}}
	if diff := cmp.Diff(want, m.AllocatableDevices(), protocmp.Transform()); diff != "" {
		t.Errorf("allocatable devices (-want +got):\n%s", diff)
	}
	p.setHealth("Dev-2", pluginapi.Healthy)
	waitCounts(t, m.Manager, 2, 2)
}

func TestRegisterRefusesBadRequests(t *testing.T) {
	dir := shortDir(t)
	m := startManager(t, dir, testclock.NewFakeClock(time.Now()))
	p := newFakePlugin(t, dir, "fake.sock", testResource, "Dev-1")
	p.start()
	for _, tc := range []struct {
		name string
		req  *pluginapi.RegisterRequest
		want string
	}{
		{"version", &pluginapi.RegisterRequest{Version: "v1alpha", Endpoint: "fake.sock", ResourceName: testResource}, `requested API version "v1alpha" is not supported by kubelet`},
		{"not extended", &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: "fake.sock", ResourceName: "gpu"}, `the ResourceName "gpu" is invalid`},
		{"kubernetes.io", &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: "fake.sock", ResourceName: "kubernetes.io/gpu"}, `the ResourceName "kubernetes.io/gpu" is invalid`},
		{"outside dir", &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: "../fake.sock", ResourceName: testResource}, `endpoint "../fake.sock" is not a socket name`},
		{"own socket", &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: "kubelet.sock", ResourceName: testResource}, `berth's own registration socket`},
		{"nothing there", &pluginapi.RegisterRequest{Version: pluginapi.Version, Endpoint: "missing.sock", ResourceName: testResource}, `device plugin does not answer: resource example.com/resource at ` + filepath.Join(dir, "missing.sock")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.register(m.SocketPath(), tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Register: got %v, want an error with %q", err, tc.want)
			}
			code := codes.InvalidArgument
			if tc.name == "nothing there" {
				code = codes.Unavailable
			}
			if got := status.Code(err); got != code {
				t.Errorf("Register: code %s, want %s", got, code)
			}
		})
	}
	if c, _ := m.Resources(); len(c) != 0 {
		t.Errorf("refused plugins left resources: %v", c)
	}
}

// TestGarbageAndSilentSockets: a socket that answers garbage and one that
// never answers are refused with ErrPluginUnreachable naming the socket,
// within the call timeout, and the manager serves other plugins meanwhile.
func TestGarbageAndSilentSockets(t *testing.T) {
	dir := shortDir(t)
	m := startManager(t, dir, testclock.NewFakeClock(time.Now()))
	garbage := listenRaw(t, filepath.Join(dir, "garbage.sock"), func(c net.Conn) {
		_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\n\r\nnot a device plugin\n"))
	})
	silent := listenRaw(t, filepath.Join(dir, "silent.sock"), func(c net.Conn) {})
	_, ctx := ktesting.NewTestContext(t)
	for _, sock := range []string{garbage, silent} {
		start := time.Now()
		err := m.Handler().Register(ctx, plugins.Plugin{Type: plugins.TypeDevice, Name: testResource, Endpoint: sock, Versions: []string{pluginapi.Version}})
		if !errors.Is(err, ErrPluginUnreachable) || !strings.Contains(err.Error(), sock) {
			t.Errorf("Register %s: got %v, want ErrPluginUnreachable naming the socket", sock, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Register %s took %v, want it bounded by the call timeout", sock, d)
		}
	}
	p := newFakePlugin(t, dir, "fake.sock", testResource, "Dev-1")
	p.start()
	if err := p.register(m.SocketPath(), nil); err != nil {
		t.Fatalf("Register after bad sockets: %v", err)
	}
	waitCounts(t, m.Manager, 1, 1)
}

// listenRaw serves a Unix socket that hands each connection to serve and
// then holds it open.
func listenRaw(t *testing.T, path string, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return path
}

func TestHandlerValidate(t *testing.T) {
	m, err := New(Config{Dir: "/x", Clock: testclock.NewFakeClock(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler()
	if err := h.Validate(plugins.Plugin{Name: testResource, Versions: []string{"v1beta1"}}); err != nil {
		t.Errorf("Validate of a good plugin: %v", err)
	}
	if err := h.Validate(plugins.Plugin{Name: testResource, Versions: []string{"v2"}}); !errors.Is(err, ErrRegistration) {
		t.Errorf("Validate of version v2: got %v, want ErrRegistration", err)
	}
	if err := h.Validate(plugins.Plugin{Name: "cpu", Versions: []string{"v1beta1"}}); !errors.Is(err, ErrRegistration) {
		t.Errorf("Validate of resource cpu: got %v, want ErrRegistration", err)
	}
}

func TestIsExtendedResourceName(t *testing.T) {
	for name, want := range map[string]bool{
		"example.com/resource": true, "nvidia.com/gpu": true, "cpu": false, "kubernetes.io/x": false,
		"requests.example.com/x": false, "example.com/": false, "a b/c": false,
	} {
		if got := IsExtendedResourceName(v1.ResourceName(name)); got != want {
			t.Errorf("IsExtendedResourceName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestHandlerRegisterAndDeregister: a device plugin found through plugin
// registration is served like one that called Register; Deregister of its
// socket makes its devices unallocatable, of another socket does nothing.
func TestHandlerRegisterAndDeregister(t *testing.T) {
	dir := shortDir(t)
	m := startManager(t, dir, testclock.NewFakeClock(time.Now()))
	p := newFakePlugin(t, dir, "fake.sock", testResource, "Dev-1", "Dev-2")
	p.start()
	_, ctx := ktesting.NewTestContext(t)
	pl := plugins.Plugin{Type: plugins.TypeDevice, Name: testResource, Endpoint: p.socket, Versions: []string{pluginapi.Version}}
	if err := m.Handler().Validate(pl); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := m.Handler().Register(ctx, pl); err != nil {
		t.Fatalf("Register: %v", err)
	}
	waitCounts(t, m.Manager, 2, 2)
	other := pl
	other.Endpoint = filepath.Join(dir, "other.sock")
	m.Handler().Deregister(ctx, other)
	if c, a := counts(m.Manager); c != 2 || a != 2 {
		t.Errorf("after Deregister of another socket: %d, %d; want 2, 2", c, a)
	}
	m.Handler().Deregister(ctx, pl)
	waitCounts(t, m.Manager, 2, 0)
}
