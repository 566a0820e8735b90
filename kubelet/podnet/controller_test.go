package podnet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/netrules/link"
	linktesting "github.com/berthnode/berth/netrules/link/testing"
)

// countingRoutes counts the List calls that have returned.
type countingRoutes struct {
	*linktesting.Fake
	lists atomic.Int32
}

func (c *countingRoutes) List() ([]link.Route, error) {
	rs, err := c.Fake.List()
	c.lists.Add(1)
	return rs, err
}

// harness is a Controller over a fake clientset, fake routes, a fake clock
// and a temporary CNI config directory.
type harness struct {
	t        *testing.T
	ctx      context.Context
	client   *fake.Clientset
	routes   *countingRoutes
	clock    *clocktesting.FakeClock
	ctrl     *Controller
	confPath string
}

// newHarness builds the controller and starts its informers; run starts
// the controller itself.
func newHarness(t *testing.T, nodes ...*v1.Node) *harness {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	var objs []runtime.Object
	for _, n := range nodes {
		objs = append(objs, n)
	}
	client := fake.NewClientset(objs...)
	// The fake clientset does not replay events missed between an
	// informer's list and its watch: wait for the watch before changing
	// anything.
	watching := make(chan struct{})
	client.PrependWatchReactor("nodes", func(action k8stesting.Action) (bool, watch.Interface, error) {
		w, err := client.Tracker().Watch(action.GetResource(), action.GetNamespace())
		close(watching)
		return true, w, err
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	h := &harness{
		t: t, ctx: ctx, client: client,
		routes:   &countingRoutes{Fake: linktesting.NewFake()},
		clock:    clocktesting.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		confPath: filepath.Join(t.TempDir(), "net.d", DefaultConfName),
	}
	ctrl, err := New(Config{
		NodeName:    "self",
		Nodes:       factory.Core().V1().Nodes(),
		ConfDir:     filepath.Dir(h.confPath),
		Routes:      h.routes,
		HairpinMode: true,
		Clock:       h.clock,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.ctrl = ctrl
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
	})
	if !cache.WaitForCacheSync(ctx.Done(), factory.Core().V1().Nodes().Informer().HasSynced) {
		t.Fatal("node informer did not sync")
	}
	<-watching
	return h
}

// run starts the controller's loop; cleanup stops it and checks it
// returned nil.
func (h *harness) run() {
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- h.ctrl.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("Run returned %v, want nil", err)
		}
	})
}

// eventually polls cond until it holds, calling step (if not nil) before
// each poll; cond returns "" when it holds, or what is still wrong.
func (h *harness) eventually(step func(), cond func() string) {
	h.t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(h.ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		if step != nil {
			step()
		}
		last = cond()
		return last == "", nil
	})
	if err != nil {
		h.t.Fatalf("condition not met: %s", last)
	}
}

// routesAre is a condition: berth's routes are exactly want.
func (h *harness) routesAre(want ...link.Route) func() string {
	return func() string {
		got, err := h.routes.Fake.List()
		if err != nil {
			return "listing routes: " + err.Error()
		}
		if diff := cmp.Diff(want, got, cmpRoutes, cmpopts.SortSlices(linktesting.CompareRoutes)); diff != "" {
			return "routes (-want +got):\n" + diff
		}
		return ""
	}
}

func (h *harness) isReady() string {
	if err := h.ctrl.Ready(); err != nil {
		return "Ready() = " + err.Error()
	}
	return ""
}

func (h *harness) create(n *v1.Node) {
	h.t.Helper()
	if _, err := h.client.CoreV1().Nodes().Create(h.ctx, n, metav1.CreateOptions{}); err != nil {
		h.t.Fatalf("creating node %s: %v", n.Name, err)
	}
}

func (h *harness) update(n *v1.Node) {
	h.t.Helper()
	if _, err := h.client.CoreV1().Nodes().Update(h.ctx, n, metav1.UpdateOptions{}); err != nil {
		h.t.Fatalf("updating node %s: %v", n.Name, err)
	}
}

func (h *harness) delete(name string) {
	h.t.Helper()
	if err := h.client.CoreV1().Nodes().Delete(h.ctx, name, metav1.DeleteOptions{}); err != nil {
		h.t.Fatalf("deleting node %s: %v", name, err)
	}
}

// wantGoldenConf checks the written config list against a golden file.
func (h *harness) wantGoldenConf(golden string) {
	h.t.Helper()
	got, err := os.ReadFile(h.confPath)
	if err != nil {
		h.t.Fatalf("reading the CNI config: %v", err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", golden))
	if err != nil {
		h.t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		h.t.Errorf("CNI config (-want +got):\n%s", diff)
	}
}

// self is this node; its pod CIDR matches testdata/ipv4.conflist.
func self() *v1.Node { return node("self", cidrs("10.244.1.0/24"), "192.168.1.1") }

func TestControllerConverges(t *testing.T) {
	h := newHarness(t,
		self(),
		node("b", cidrs("10.244.2.0/24"), "192.168.1.2"),
		node("c", cidrs("10.244.3.0/24", "fd00:10:244:3::/64"), "192.168.1.3", "2001:db8::3"),
	)
	h.run()
	h.eventually(nil, h.routesAre(
		rt("10.244.2.0/24", "192.168.1.2"),
		rt("10.244.3.0/24", "192.168.1.3"),
		rt("fd00:10:244:3::/64", "2001:db8::3"),
	))
	h.eventually(nil, h.isReady)
	h.wantGoldenConf("ipv4.conflist")

	h.update(node("c", cidrs("10.244.3.0/24", "fd00:10:244:3::/64"), "192.168.1.33", "2001:db8::3"))
	h.eventually(nil, h.routesAre(
		rt("10.244.2.0/24", "192.168.1.2"),
		rt("10.244.3.0/24", "192.168.1.33"),
		rt("fd00:10:244:3::/64", "2001:db8::3"),
	))

	h.delete("c")
	h.eventually(nil, h.routesAre(rt("10.244.2.0/24", "192.168.1.2")))

	// A node without an InternalIP gets no route and breaks nothing.
	h.create(node("d", cidrs("10.244.4.0/24")))
	h.create(node("e", cidrs("10.244.5.0/24"), "192.168.1.5"))
	h.eventually(nil, h.routesAre(rt("10.244.2.0/24", "192.168.1.2"), rt("10.244.5.0/24", "192.168.1.5")))
	h.update(node("d", cidrs("10.244.4.0/24"), "192.168.1.4"))
	h.eventually(nil, h.routesAre(
		rt("10.244.2.0/24", "192.168.1.2"),
		rt("10.244.4.0/24", "192.168.1.4"),
		rt("10.244.5.0/24", "192.168.1.5"),
	))
	if err := h.ctrl.Ready(); err != nil {
		t.Errorf("Ready() = %v, want nil", err)
	}
}

func TestControllerReadyOnlyAfterPodCIDR(t *testing.T) {
	h := newHarness(t, node("self", nil, "192.168.1.1"), node("b", cidrs("10.244.2.0/24"), "192.168.1.2"))
	if err := h.ctrl.Ready(); !errors.Is(err, ErrNotReady) {
		t.Errorf("Ready() before Run = %v, want %v", err, ErrNotReady)
	}
	h.run()
	h.eventually(nil, h.routesAre(rt("10.244.2.0/24", "192.168.1.2"))) // a sync has run
	if err := h.ctrl.Ready(); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "no podCIDR") {
		t.Errorf("Ready() without a podCIDR = %v, want %v saying so", err, ErrNotReady)
	}
	if _, err := os.Stat(h.confPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CNI config exists before the podCIDR is known (stat: %v)", err)
	}

	h.update(self())
	h.eventually(nil, h.isReady)
	h.wantGoldenConf("ipv4.conflist")
}

func TestControllerKeepsConfWhileNodeMissing(t *testing.T) {
	h := newHarness(t, self(), node("b", cidrs("10.244.2.0/24"), "192.168.1.2"))
	h.run()
	h.eventually(nil, h.isReady)

	h.delete("self")
	// Events arrive in order: once c's route is there, the deletion was seen.
	h.create(node("c", cidrs("10.244.3.0/24"), "192.168.1.3"))
	h.eventually(nil, h.routesAre(rt("10.244.2.0/24", "192.168.1.2"), rt("10.244.3.0/24", "192.168.1.3")))
	if err := h.ctrl.Ready(); err != nil {
		t.Errorf("Ready() while the node is missing = %v, want nil", err)
	}
	h.wantGoldenConf("ipv4.conflist")
}

func TestControllerRetriesWithBackoff(t *testing.T) {
	h := newHarness(t, self(), node("b", cidrs("10.244.2.0/24"), "192.168.1.2"))
	h.routes.SetError(errors.New("netlink is down"))
	h.run()
	h.eventually(nil, func() string {
		if h.routes.lists.Load() == 0 {
			return "no sync has listed the routes yet"
		}
		return ""
	})
	h.routes.SetError(nil)
	// The retry waits for the backoff on the fake clock.
	h.eventually(func() { h.clock.Step(minRetryDelay) }, h.routesAre(rt("10.244.2.0/24", "192.168.1.2")))
	if err := h.ctrl.Ready(); err != nil {
		t.Errorf("Ready() = %v, want nil: routes do not gate the CNI config", err)
	}
}

func TestControllerResyncRepairsDrift(t *testing.T) {
	h := newHarness(t, self(), node("b", cidrs("10.244.2.0/24"), "192.168.1.2"))
	h.run()
	want := h.routesAre(rt("10.244.2.0/24", "192.168.1.2"))
	h.eventually(nil, want)

	// Someone deletes berth's route and leaves a stale one of berth's.
	mustRoutes(t, h.routes.Delete, rt("10.244.2.0/24", "192.168.1.2"))
	mustRoutes(t, h.routes.Add, rt("10.244.9.0/24", "192.168.1.9"))
	h.eventually(func() { h.clock.Step(DefaultResyncPeriod) }, want)
}

func mustRoutes(t *testing.T, f func(link.Route) error, rs ...link.Route) {
	t.Helper()
	for _, r := range rs {
		if err := f(r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestControllerSyncReportsNodes(t *testing.T) {
	h := newHarness(t, self(),
		node("b", cidrs("10.244.2.0/24"), "192.168.1.2"),
		node("c", cidrs("10.244.3.0/24"), "192.168.1.3"),
	)
	// Another owner already routes b's pod CIDR: berth must not take it over.
	foreign := rt("10.244.2.0/24", "192.168.1.99")
	mustRoutes(t, h.routes.Others().Add, foreign)

	err := h.ctrl.sync(h.ctx)
	if !errors.Is(err, link.ErrForeignRoute) || !strings.Contains(err.Error(), "node b") {
		t.Errorf("sync() = %v, want %v naming node b", err, link.ErrForeignRoute)
	}
	if msg := h.routesAre(rt("10.244.3.0/24", "192.168.1.3"))(); msg != "" {
		t.Error(msg)
	}
	others, _ := h.routes.Others().List()
	if diff := cmp.Diff([]link.Route{foreign}, others, cmpRoutes); diff != "" {
		t.Errorf("foreign routes (-want +got):\n%s", diff)
	}
	if err := h.ctrl.Ready(); err != nil {
		t.Errorf("Ready() = %v, want nil", err)
	}
}

func TestControllerRunOnce(t *testing.T) {
	h := newHarness(t, self())
	h.run()
	h.eventually(nil, h.isReady)
	if err := h.ctrl.Run(h.ctx); err == nil {
		t.Error("second Run returned nil, want an error")
	}
}
