package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// The benchmarks measure berth on the bed's first node and, in the same
// run, the floor under it: the same pods started straight through the
// node's containerd, which is what any node agent must at least wait for.
// They report one run's numbers (ns/op is suppressed: an "op" lasts
// minutes), so `-benchtime` and `-count` add nothing but more runs.
const (
	// burstPods is the size of a burst, below the node's 110 pods.
	burstPods = 100
	// startupSamples is how many pods BenchmarkPodStartup times, one at
	// a time; it reports the median.
	startupSamples = 5
	// createWorkers is how many goroutines create a burst's pods.
	createWorkers = 8
	// idleWindow is how long BenchmarkIdle watches berth's CPU use.
	idleWindow = 30 * time.Second
	// readyTimeout bounds a burst's start and its removal.
	readyTimeout = 5 * time.Minute
	// Before each timed start of pods, berth's or the floor's, the machine
	// settles until at most idleBusy of its CPU time is used, for up to
	// idleTimeout: the removal of the pods before leaves the kernel work
	// for a while.
	idleBusy    = 0.15
	idleTimeout = 30 * time.Second
	// berthArgv0 is how StartBerth starts berth: as kubeadm's kubelet.
	berthArgv0 = "/usr/local/bin/kubelet"
)

// The floor's pods are invisible to berth: they carry none of the
// kubelet's io.kubernetes.* labels (berth removes sandboxes of unknown pods
// that do), only floorLabel, and live in a cgroup of their own.
const (
	floorLabel     = "berth.bench/floor"
	floorNamespace = "berth-bench-floor"
	floorCgroup    = "berth-bench-floor"
	// kubeletNamespaceLabel is the label berth's sandboxes carry with
	// their pod's namespace, to see when a namespace's are gone.
	kubeletNamespaceLabel = "io.kubernetes.pod.namespace"
)

// floorWorkers are the parallelisms the burst floor tries; the best counts.
var floorWorkers = []int{4, 8, 16}

// BenchmarkPodStartup times one pod on an idle node, from the Create call
// to Ready as a watch sees it, against the same sandbox and container
// started through CRI. Goal: berth ≤ floor + 300 ms.
func BenchmarkPodStartup(b *testing.B) {
	env := newBenchEnv(b, "bench-startup")
	ctx := b.Context()
	var berth, floor []time.Duration
	for i := range startupSamples {
		name := fmt.Sprintf("startup-%d", i)
		if err := env.createPods(ctx, []string{name}, 1); err != nil {
			b.Fatal(err)
		}
		if err := env.pods.waitReady(ctx, 1); err != nil {
			b.Fatal(err)
		}
		berth = append(berth, env.pods.latencies()[0])
		if _, err := env.deleteAll(ctx); err != nil {
			b.Fatal(err)
		}
		d, err := env.floorPod(ctx, fmt.Sprintf("floor-startup-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		floor = append(floor, d)
		if err := env.removeFloor(context.WithoutCancel(ctx)); err != nil {
			b.Fatal(err)
		}
	}
	got, base := percentile(berth, 50), percentile(floor, 50)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(got), "berth-ms")
	b.ReportMetric(ms(base), "floor-ms")
	b.ReportMetric(ms(got-base), "overhead-ms")
	b.Logf("pod startup (median of %d): berth %s, CRI floor %s, overhead %s (goal ≤ 300ms); berth samples %v, floor samples %v",
		startupSamples, round(got), round(base), round(got-base), rounds(berth), rounds(floor))
}

// BenchmarkPodBurst100 starts 100 pods at once on one node: the time until
// all are Running and Ready, each pod's creation-to-Ready, and berth's
// memory and CPU during the burst, against the same 100 pods started
// through CRI with the best of a few parallelisms. Goal: all Ready ≤
// 1.2 × floor.
func BenchmarkPodBurst100(b *testing.B) {
	env := newBenchEnv(b, "bench-burst")
	ctx := b.Context()
	var floor floorRun
	for _, workers := range floorWorkers {
		r, err := env.runFloor(ctx, fmt.Sprintf("floor-w%d", workers), burstPods, workers)
		if err != nil {
			b.Fatal(err)
		}
		if err := env.removeFloor(context.WithoutCancel(ctx)); err != nil {
			b.Fatal(err)
		}
		b.Logf("CRI floor, %d workers: all running in %s, per pod p50 %s p99 %s; machine CPU %.1f s (%.0f%% of its %d CPUs)",
			workers, round(r.total), round(percentile(r.perPod, 50)), round(percentile(r.perPod, 99)),
			r.machineCPU.Seconds(), busyShare(r.machineCPU, r.total), runtime.NumCPU())
		if floor.total == 0 || r.total < floor.total {
			floor = r
		}
	}
	burst, err := env.burst(ctx)
	if err != nil {
		b.Fatal(err)
	}
	lat := env.pods.latencies()
	removal, err := env.deleteAll(ctx)
	if err != nil {
		b.Fatal(err)
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(burst.total.Seconds(), "all-ready-s")
	b.ReportMetric(floor.total.Seconds(), "floor-s")
	b.ReportMetric(burst.total.Seconds()/floor.total.Seconds(), "x-floor")
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(percentile(floor.perPod, 50)), "floor-p50-ms")
	b.ReportMetric(ms(percentile(floor.perPod, 99)), "floor-p99-ms")
	b.ReportMetric(float64(floor.workers), "floor-workers")
	b.ReportMetric(mib(burst.peakRSS), "rss-peak-MiB")
	b.ReportMetric(mib(burst.after.RSS), "rss-end-MiB")
	b.ReportMetric(burst.cpu.Seconds(), "cpu-s")
	b.ReportMetric(burst.machineCPU.Seconds(), "machine-cpu-s")
	b.ReportMetric(floor.machineCPU.Seconds(), "floor-machine-cpu-s")
	b.ReportMetric(removal.Seconds(), "delete-all-s")
	b.Logf("burst of %d pods: all Ready in %s vs CRI floor %s with %d workers (%.2f× floor, goal ≤ 1.2×)",
		burstPods, round(burst.total), round(floor.total), floor.workers, burst.total.Seconds()/floor.total.Seconds())
	b.Logf("per pod creation→Ready p50 %s p99 %s (floor p50 %s p99 %s)",
		round(p50), round(p99), round(percentile(floor.perPod, 50)), round(percentile(floor.perPod, 99)))
	b.Logf("machine during the burst: %.1f CPU s (%.0f%% of its %d CPUs; %.0f%% busy just before), the floor's %.1f CPU s: the control plane shares these CPUs",
		burst.machineCPU.Seconds(), busyShare(burst.machineCPU, burst.total), runtime.NumCPU(), 100*burst.idleBefore, floor.machineCPU.Seconds())
	b.Logf("berth during the burst: %.2f CPU s, RSS %.1f MiB before, peak %.1f MiB, %.1f MiB after (%.1f anonymous); deleting all took %s",
		burst.cpu.Seconds(), mib(burst.before.RSS), mib(burst.peakRSS), mib(burst.after.RSS), mib(burst.after.AnonRSS), round(removal))
}

// BenchmarkIdle measures berth's CPU use (share of one core over 30 s)
// and RSS with none of our pods on the node, then with 100 running. Goals
// with 100 pods: RSS ≤ 60 MiB, CPU ≤ 1 % of a core.
func BenchmarkIdle(b *testing.B) {
	env := newBenchEnv(b, "bench-idle")
	ctx := b.Context()
	pid, err := bed.FindProcess(env.node.Name, berthArgv0)
	if err != nil {
		b.Fatal(err)
	}
	// Whatever an earlier benchmark left running settles first.
	if err := wait(ctx, 10*time.Second); err != nil {
		b.Fatal(err)
	}
	empty, err := testbed.MeasureProcess(ctx, pid, idleWindow)
	if err != nil {
		b.Fatal(err)
	}
	names := podNames("idle", burstPods)
	if err := env.createPods(ctx, names, createWorkers); err != nil {
		b.Fatal(err)
	}
	if err := env.pods.waitReady(ctx, len(names)); err != nil {
		b.Fatal(err)
	}
	// The last status updates of the burst drain before the window opens.
	if err := wait(ctx, 15*time.Second); err != nil {
		b.Fatal(err)
	}
	full, err := testbed.MeasureProcess(ctx, pid, idleWindow)
	if err != nil {
		b.Fatal(err)
	}
	onNode, err := env.podsOnNode(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := env.deleteAll(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(empty.CPUPercent, "cpu-%-0pods")
	b.ReportMetric(mib(empty.End.RSS), "rss-MiB-0pods")
	b.ReportMetric(full.CPUPercent, "cpu-%-100pods")
	b.ReportMetric(mib(full.End.RSS), "rss-MiB-100pods")
	b.ReportMetric(mib(full.End.AnonRSS), "anon-MiB-100pods")
	b.Logf("berth idle over %s: 0 pods: %.2f%% of a core, RSS %.1f MiB (%.1f anonymous); %d pods (%d on the node in all): %.2f%% of a core (goal ≤ 1%%), RSS %.1f MiB (%.1f anonymous; goal ≤ 60 MiB)",
		idleWindow, empty.CPUPercent, mib(empty.End.RSS), mib(empty.End.AnonRSS), burstPods, onNode, full.CPUPercent, mib(full.End.RSS), mib(full.End.AnonRSS))
}

// probeWindow is how long BenchmarkProbes100 watches berth.
const probeWindow = 2 * time.Minute

// BenchmarkProbes100 runs 100 pods with 3 probes each (http readiness and
// tcp liveness on an echo container, exec liveness on a busybox sidecar),
// every 10 s, and reports berth's CPU and RSS over 2 minutes. Goal: ≤ 5 % of
// a core and ≤ 80 MiB.
func BenchmarkProbes100(b *testing.B) {
	env := newBenchEnv(b, "bench-probes")
	ctx := b.Context()
	pid, err := bed.FindProcess(env.node.Name, berthArgv0)
	if err != nil {
		b.Fatal(err)
	}
	names := podNames("probed", burstPods)
	err = env.createPodsWith(ctx, names, createWorkers, func(name string) *v1.Pod {
		return probedPod(name, env.node.Name)
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := env.pods.waitReady(ctx, len(names)); err != nil {
		b.Fatal(err)
	}
	if err := wait(ctx, 15*time.Second); err != nil {
		b.Fatal(err)
	}
	use, err := testbed.MeasureProcess(ctx, pid, probeWindow)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := env.deleteAll(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(use.CPUPercent, "cpu-%")
	b.ReportMetric(mib(use.End.RSS), "rss-MiB")
	b.ReportMetric(mib(use.End.AnonRSS), "anon-MiB")
	b.Logf("berth with %d pods × 3 probes every 10s, over %s: %.2f%% of a core (goal ≤ 5%%), RSS %.1f MiB (%.1f anonymous; goal ≤ 80 MiB)",
		burstPods, probeWindow, use.CPUPercent, mib(use.End.RSS), mib(use.End.AnonRSS))
}

// probedPod is an echo server probed over http and tcp, and a busybox
// sidecar probed by exec, all every 10 s.
func probedPod(name, node string) *v1.Pod {
	every := func(h v1.ProbeHandler) *v1.Probe {
		return &v1.Probe{ProbeHandler: h, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 3}
	}
	pod := busyboxPod(name, node, v1.RestartPolicyAlways, "sleep 3600")
	pod.Spec.Containers[0].LivenessProbe = every(v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}})
	pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{
		Name:           "echo",
		Image:          images.EchoRef,
		ReadinessProbe: every(v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}),
		LivenessProbe:  every(v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(8080)}}),
	})
	return pod
}

// benchEnv is what each benchmark works with: the node, a client that is
// not rate limited, the node's CRI, and a namespace of its own whose pods
// a tracker follows.
type benchEnv struct {
	node   testbed.Node
	client kubernetes.Interface
	cri    *cri.Client
	ns     string
	pods   *podTracker
}

// newBenchEnv readies the bed's first node for a benchmark; cleanups remove
// the namespace's pods, the namespace and the floor's pods.
func newBenchEnv(b *testing.B, ns string) *benchEnv {
	b.Helper()
	testbed.Require(b, bed)
	cfg, err := bed.RESTConfig(testbed.AdminKubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	// client-go's default of 5 requests a second would make the
	// benchmark time its own client.
	cfg.QPS, cfg.Burst = 1000, 1000
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rt, err := cri.Dial(bed.Nodes()[0].CRIEndpoint)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close() })
	// The tracker outlives b.Context(), which ends before the cleanups
	// that wait for the pods to go; cleanups run last-registered first.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	b.Cleanup(stopWatch)
	env := &benchEnv{node: bed.Nodes()[0], client: client, cri: rt, ns: ns, pods: newPodTracker()}
	ctx := b.Context()
	if err := env.waitNodeReady(ctx); err != nil {
		b.Fatal(err)
	}
	if err := env.createNamespace(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx := context.Background()
		if _, err := env.deleteAll(ctx); err != nil {
			b.Errorf("cleanup: %v", err)
		}
		_ = client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		if err := env.removeFloor(ctx); err != nil {
			b.Errorf("cleanup: %v", err)
		}
	})
	if err := env.pods.start(watchCtx, client, ns); err != nil {
		b.Fatal(err)
	}
	return env
}

// waitNodeReady waits until berth reports the node Ready.
func (e *benchEnv) waitNodeReady(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 0; ; attempt++ {
		n, err := e.client.CoreV1().Nodes().Get(ctx, e.node.Name, metav1.GetOptions{})
		if err == nil && condition(n, v1.NodeReady) == v1.ConditionTrue {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not Ready within 2m (error %v)", e.node.Name, err)
		}
		pause(ctx, attempt)
	}
}

// createNamespace creates the benchmark's namespace and waits for its
// default service account, without which pods are refused.
func (e *benchEnv) createNamespace(ctx context.Context) error {
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}
	if _, err := e.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", e.ns, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		_, err := e.client.CoreV1().ServiceAccounts(e.ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no default service account in %s: %w", e.ns, err)
		}
		pause(ctx, attempt)
	}
}

// createPods creates busybox pods that sleep on the node, workers at a
// time, recording when each Create call began.
func (e *benchEnv) createPods(ctx context.Context, names []string, workers int) error {
	return e.createPodsWith(ctx, names, workers, func(name string) *v1.Pod {
		return busyboxPod(name, e.node.Name, v1.RestartPolicyAlways, "sleep 3600")
	})
}

// createPodsWith creates the pods newPod makes for names, workers at a
// time.
func (e *benchEnv) createPodsWith(ctx context.Context, names []string, workers int, newPod func(name string) *v1.Pod) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, name := range names {
		g.Go(func() error {
			pod := newPod(name)
			e.pods.created(name, time.Now())
			if _, err := e.client.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create pod %s: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// burstResult is what BenchmarkPodBurst100 measures of berth.
type burstResult struct {
	// total runs from the first Create call to the last pod Ready.
	total         time.Duration
	before, after testbed.ProcessStats
	// peakRSS is the highest RSS sampled during the burst.
	peakRSS uint64
	// cpu is the CPU time berth used during the burst, machineCPU what
	// the whole machine did (control plane and runtime included).
	cpu, machineCPU time.Duration
	// idleBefore is the machine's busy share just before the burst.
	idleBefore float64
}

// burst creates burstPods pods at once and waits until all are Ready,
// sampling berth's memory meanwhile.
func (e *benchEnv) burst(ctx context.Context) (burstResult, error) {
	pid, err := bed.FindProcess(e.node.Name, berthArgv0)
	if err != nil {
		return burstResult{}, err
	}
	var r burstResult
	if r.idleBefore, err = testbed.WaitIdle(ctx, idleBusy, idleTimeout); err != nil {
		return r, err
	}
	if r.before, err = testbed.ReadProcessStats(pid); err != nil {
		return r, err
	}
	sampler := testbed.SampleRSS(ctx, pid, 100*time.Millisecond)
	busy0, err := testbed.MachineBusy()
	if err != nil {
		return r, err
	}
	start := time.Now()
	names := podNames("burst", burstPods)
	if err := e.createPods(ctx, names, createWorkers); err != nil {
		return r, err
	}
	if err := e.pods.waitReady(ctx, len(names)); err != nil {
		return r, err
	}
	r.total = e.pods.lastReady().Sub(start)
	busy, err := testbed.MachineBusy()
	if err != nil {
		return r, err
	}
	r.machineCPU = busy - busy0
	r.peakRSS = sampler()
	if r.after, err = testbed.ReadProcessStats(pid); err != nil {
		return r, err
	}
	r.peakRSS = max(r.peakRSS, r.after.RSS)
	r.cpu = r.after.CPU - r.before.CPU
	return r, nil
}

// deleteAll deletes the namespace's pods and waits until they are gone
// from the API and their sandboxes from the runtime; it returns how long
// that took.
func (e *benchEnv) deleteAll(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	err := e.client.CoreV1().Pods(e.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("delete pods of %s: %w", e.ns, err)
	}
	if err := e.pods.waitGone(ctx); err != nil {
		return 0, err
	}
	filter := &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{kubeletNamespaceLabel: e.ns}}
	deadline := time.Now().Add(readyTimeout)
	for attempt := 0; ; attempt++ {
		resp, err := e.cri.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter})
		if err == nil && len(resp.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("sandboxes of %s still in the runtime %s after their pods went (error %v)", e.ns, readyTimeout, err)
		}
		pause(ctx, attempt)
	}
	took := time.Since(start)
	e.pods.reset()
	return took, nil
}

// podsOnNode counts every pod bound to the node, ours or not.
func (e *benchEnv) podsOnNode(ctx context.Context) (int, error) {
	list, err := e.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + e.node.Name})
	if err != nil {
		return 0, fmt.Errorf("list pods on %s: %w", e.node.Name, err)
	}
	return len(list.Items), nil
}

// podTracker follows a namespace's pods through a watch: when each was
// created (as the caller recorded it), first seen Ready, and which exist.
type podTracker struct {
	mu      sync.Mutex
	create  map[string]time.Time
	ready   map[string]time.Time
	present map[string]bool
	// changed wakes a waiter after any change.
	changed chan struct{}
}

func newPodTracker() *podTracker {
	t := &podTracker{changed: make(chan struct{}, 1)}
	t.reset()
	return t
}

// start runs an informer on the namespace's pods until ctx ends.
func (t *podTracker) start(ctx context.Context, client kubernetes.Interface, ns string) error {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    t.observe,
		UpdateFunc: func(_, obj any) { t.observe(obj) },
		DeleteFunc: t.deleted,
	})
	if err != nil {
		return fmt.Errorf("watch pods of %s: %w", ns, err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("watch pods of %s: cache never synced", ns)
	}
	return nil
}

func (t *podTracker) observe(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.present[pod.Name] = true
	if _, seen := t.ready[pod.Name]; !seen && podReady(pod) && pod.DeletionTimestamp == nil {
		t.ready[pod.Name] = now
	}
	t.wake()
}

func (t *podTracker) deleted(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	_, name, _ := cache.SplitMetaNamespaceKey(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.present, name)
	t.wake()
}

// wake tells a waiter something changed; t.mu is held.
func (t *podTracker) wake() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// created records when the Create call of a pod began.
func (t *podTracker) created(name string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.create[name] = at
}

// reset forgets the pods created so far, once they are gone.
func (t *podTracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.create, t.ready = map[string]time.Time{}, map[string]time.Time{}
	if t.present == nil {
		t.present = map[string]bool{}
	}
}

// waitReady waits until n of the pods created since the last reset have
// been seen Ready.
func (t *podTracker) waitReady(ctx context.Context, n int) error {
	return t.waitFor(ctx, func() (bool, string) {
		count := 0
		for name := range t.create {
			if _, ok := t.ready[name]; ok {
				count++
			}
		}
		return count >= n, fmt.Sprintf("%d of %d pods Ready", count, n)
	})
}

// waitGone waits until the namespace holds no pod.
func (t *podTracker) waitGone(ctx context.Context) error {
	return t.waitFor(ctx, func() (bool, string) {
		return len(t.present) == 0, fmt.Sprintf("%d pods left", len(t.present))
	})
}

// waitFor waits up to readyTimeout until done, called with t.mu held,
// says so.
func (t *podTracker) waitFor(ctx context.Context, done func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		t.mu.Lock()
		ok, state := done()
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-t.changed:
		case <-ctx.Done():
			return fmt.Errorf("pods: %s: %w", state, ctx.Err())
		}
	}
}

// latencies returns each created pod's time from Create to Ready, sorted.
func (t *podTracker) latencies() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []time.Duration
	for name, c := range t.create {
		if r, ok := t.ready[name]; ok {
			out = append(out, r.Sub(c))
		}
	}
	slices.Sort(out)
	return out
}

// lastReady returns when the last created pod became Ready.
func (t *podTracker) lastReady() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var last time.Time
	for name := range t.create {
		if r := t.ready[name]; r.After(last) {
			last = r
		}
	}
	return last
}

// floorRun is one start of floor pods through CRI.
type floorRun struct {
	workers int
	// total runs from the first RunPodSandbox to the last container
	// running.
	total time.Duration
	// perPod are each pod's RunPodSandbox-to-running times.
	perPod []time.Duration
	// machineCPU is what the whole machine did meanwhile.
	machineCPU time.Duration
}

// runFloor starts count floor pods through CRI, workers at a time.
func (e *benchEnv) runFloor(ctx context.Context, prefix string, count, workers int) (floorRun, error) {
	r := floorRun{workers: workers, perPod: make([]time.Duration, count)}
	if _, err := testbed.WaitIdle(ctx, idleBusy, idleTimeout); err != nil {
		return r, err
	}
	busy0, err := testbed.MachineBusy()
	if err != nil {
		return r, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	start := time.Now()
	for i, name := range podNames(prefix, count) {
		g.Go(func() error {
			d, err := e.floorPod(gctx, name)
			r.perPod[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	r.total = time.Since(start)
	busy, err := testbed.MachineBusy()
	if err != nil {
		return r, err
	}
	r.machineCPU = busy - busy0
	return r, nil
}

// floorPod starts the sandbox and container berth would start for a
// busyboxPod (same image, command, namespaces, CNI network, DNS, log
// files, cgroup below the node's) straight through CRI, and returns the
// time until its container runs. It leaves out what only a node agent
// does: the service account token volume, /etc/hosts and the termination
// message file.
func (e *benchEnv) floorPod(ctx context.Context, name string) (time.Duration, error) {
	uid := string(uuid.NewUUID())
	nsOpts := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	unconfined := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	labels := map[string]string{floorLabel: "true"}
	logDir := path.Join("/var/log/pods", fmt.Sprintf("%s_%s_%s", floorNamespace, name, uid))
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: floorNamespace, Uid: uid},
		Hostname:     name,
		LogDirectory: logDir,
		DnsConfig: &runtimeapi.DNSConfig{
			Servers:  []string{"10.96.0.10"},
			Searches: []string{floorNamespace + ".svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Options:  []string{"ndots:5"},
		},
		Labels: labels,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    path.Join(e.node.CgroupParent, floorCgroup, "pod"+uid),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: nsOpts, Seccomp: unconfined},
		},
	}
	ctrCfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
		Image:    &runtimeapi.ImageSpec{Image: images.BusyboxRef, UserSpecifiedImage: images.BusyboxRef},
		Command:  []string{"sh", "-c", "sleep 3600"},
		LogPath:  "main/0.log",
		Labels:   labels,
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: nsOpts, Seccomp: unconfined},
		},
	}
	start := time.Now()
	if err := e.startFloorPod(ctx, sbCfg, ctrCfg); err != nil {
		return 0, fmt.Errorf("floor pod %s: %w", name, err)
	}
	return time.Since(start), nil
}

// startFloorPod runs the sandbox, creates and starts the container in it,
// and checks that it runs.
func (e *benchEnv) startFloorPod(ctx context.Context, sbCfg *runtimeapi.PodSandboxConfig, ctrCfg *runtimeapi.ContainerConfig) error {
	logDir, err := bed.HostPath(e.node.Name, path.Join(sbCfg.LogDirectory, ctrCfg.Metadata.Name))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("create log directory: %w", err)
	}
	sb, err := e.cri.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	ctr, err := e.cri.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sb.PodSandboxId, Config: ctrCfg, SandboxConfig: sbCfg,
	})
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	if _, err := e.cri.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	st, err := e.cri.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr.ContainerId})
	if err != nil {
		return fmt.Errorf("container status: %w", err)
	}
	if s := st.GetStatus().GetState(); s != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("container is %s after its start, want running", s)
	}
	return nil
}

// removeFloor stops and removes every floor sandbox (their containers go
// with them), their log folders and their cgroups.
func (e *benchEnv) removeFloor(ctx context.Context) error {
	resp, err := e.cri.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
		Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{floorLabel: "true"}},
	})
	if err != nil {
		return fmt.Errorf("list floor sandboxes: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, sb := range resp.Items {
		g.Go(func() error {
			if _, err := e.cri.Runtime.StopPodSandbox(gctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				return fmt.Errorf("stop floor sandbox %s: %w", sb.Id, err)
			}
			if _, err := e.cri.Runtime.RemovePodSandbox(gctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				return fmt.Errorf("remove floor sandbox %s: %w", sb.Id, err)
			}
			m := sb.Metadata
			dir, err := bed.HostPath(e.node.Name, path.Join("/var/log/pods", fmt.Sprintf("%s_%s_%s", m.Namespace, m.Name, m.Uid)))
			if err != nil {
				return err
			}
			return os.RemoveAll(dir)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return removeCgroupDirs(path.Join(e.node.CgroupParent, floorCgroup))
}

// removeCgroupDirs removes the (empty) cgroup rel and those below it from
// every hierarchy: the runtime removes its containers' cgroups, not the
// parents it created for them.
func removeCgroupDirs(rel string) error {
	roots, err := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", rel))
	if err != nil {
		return err
	}
	roots = append(roots, filepath.Join("/sys/fs/cgroup", rel))
	for _, root := range roots {
		var dirs []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("walk cgroup %s: %w", root, err)
		}
		for _, d := range slices.Backward(dirs) {
			// cpu and cpuacct may be one hierarchy under two names.
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove cgroup %s: %w", d, err)
			}
		}
	}
	return nil
}

// wait waits d, or until ctx ends.
// busyShare is cpu as a percentage of what the machine's CPUs could do in
// wall.
func busyShare(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / (wall.Seconds() * float64(runtime.NumCPU()))
}

func wait(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func podNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// percentile returns the nearest-rank p-th percentile of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func rounds(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = round(d)
	}
	return out
}
