package pods

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/prober"
	"github.com/berthnode/berth/kubelet/relist"
)

// Manager runs the pods bound to the node. Make it with New and run it with
// Run.
type Manager struct {
	cfg Config
	// nodeCPU (millicores) and nodeMem (bytes) are the node's capacity.
	nodeCPU, nodeMem int64
	// informers watch the node's pods and the cluster's services.
	informers podInformers

	mu      sync.Mutex
	ctx     context.Context
	workers map[types.UID]*podWorker
	sources sourcesState
	static  staticState
	// relister lists the runtime and tells which pods changed.
	relister *relist.Relister
	wg       sync.WaitGroup
	// deps are what the pod workers need from the node.
	deps *workerDeps
	// probing is the probe workers' configuration; its Since, set by Run,
	// spreads the first probes of adopted containers.
	probing prober.Config
	// metrics are the Prometheus metrics of the pods.
	metrics *podMetrics
	// shuttingDown is set while the node shuts down.
	shuttingDown atomic.Bool
	// resizing serializes resize admissions, so that two pods cannot both
	// take the same free room (resize.go).
	resizing sync.Mutex
}

// podInformers watch the node's pods and the cluster's services (for the
// containers' service environment variables).
type podInformers struct {
	pods      cache.SharedIndexInformer
	podsF     informers.SharedInformerFactory
	servicesF informers.SharedInformerFactory
	services  corelisters.ServiceLister
}

// sourcesState tells which sources of pods, the API server and the static
// pod source, have delivered their first complete view. Until both have, a
// sandbox of an unknown pod may belong to a pod not seen yet and is left
// alone. It is guarded by Manager.mu.
type sourcesState struct {
	apiSynced    bool
	staticSynced bool
	// pending holds the API's pods seen before its first list was
	// complete. They are admitted oldest first once it is, so that after a
	// restart a newer pod cannot take the place of one already running.
	pending map[types.UID]*v1.Pod
}

// New makes a pod manager from a valid configuration.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mem := cfg.MemoryCapacityBytes
	if mem == 0 {
		var info unix.Sysinfo_t
		if err := unix.Sysinfo(&info); err != nil {
			return nil, fmt.Errorf("read the node's memory size: %w", err)
		}
		mem = int64(info.Totalram) * int64(info.Unit)
	}
	selector := fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
	podsF := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }),
		informers.WithTransform(dropManagedFields))
	servicesF := cfg.Informers
	if servicesF == nil {
		servicesF = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithTransform(dropManagedFields))
	}
	m := &Manager{
		cfg:     cfg,
		nodeCPU: int64(runtime.NumCPU()) * 1000,
		nodeMem: mem,
		informers: podInformers{
			podsF:     podsF,
			pods:      podsF.Core().V1().Pods().Informer(),
			servicesF: servicesF,
			services:  servicesF.Core().V1().Services().Lister(),
		},
		relister: relist.New(cfg.Runtime, cfg.Clock),
		workers:  map[types.UID]*podWorker{},
		sources:  sourcesState{pending: map[types.UID]*v1.Pod{}},
		static:   staticState{mirrors: map[string]*v1.Pod{}, swept: map[types.UID]time.Time{}},
	}
	runner, err := m.newRunner()
	if err != nil {
		return nil, err
	}
	m.probing = prober.Config{
		Runtime: cfg.Runtime, Recorder: cfg.Recorder, Clock: cfg.Clock,
		Jitter: prober.RandomJitter,
		Go: func(loop func()) {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				loop()
			}()
		},
	}
	m.metrics = newPodMetrics(m)
	m.deps = m.newWorkerDeps(runner)
	return m, nil
}

// dropManagedFields keeps the informer caches free of the objects'
// managedFields, which berth never reads: on a busy cluster they are most
// of an object's size.
func dropManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// Run runs the pods until ctx is done, then waits for the pod workers to
// stop and returns nil. The containers keep running: a restarted manager
// adopts them.
func (m *Manager) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithName("pods")
	ctx = klog.NewContext(ctx, logger)
	m.mu.Lock()
	if m.ctx != nil {
		m.mu.Unlock()
		return errors.New("pod manager already running")
	}
	m.ctx = ctx
	m.probing.Since = m.cfg.Clock.Now()
	m.mu.Unlock()
	reg, err := m.informers.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.podChanged(obj) },
		UpdateFunc: func(_, obj any) { m.podChanged(obj) },
		DeleteFunc: m.podDeleted,
	})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	m.informers.podsF.Start(ctx.Done())
	m.informers.servicesF.Start(ctx.Done())
	defer func() {
		m.informers.podsF.Shutdown()
		if m.cfg.Informers == nil {
			m.informers.servicesF.Shutdown()
		}
		m.wg.Wait()
	}()
	for _, ok := range m.informers.podsF.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil
		}
	}
	for _, ok := range m.informers.servicesF.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil
		}
	}
	// Every pod of the first list has a worker before the runtime is
	// listed: what is left in the runtime then belongs to no known pod.
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil
	}
	logger.Info("Pod informer synced; running pods", "node", m.cfg.NodeName)
	m.mu.Lock()
	m.sources.apiSynced = true
	m.admitPendingLocked()
	m.sources.staticSynced = m.cfg.StaticPods == nil
	m.mu.Unlock()
	if src := m.cfg.StaticPods; src != nil {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := src.Run(ctx, m.setStaticPods); err != nil {
				logger.Error(err, "Static pod source failed; static pods are not updated and stray sandboxes not removed")
			}
		}()
	}
	m.housekeeping(ctx)
	ticker := m.cfg.Clock.NewTicker(relist.Period)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
			m.housekeeping(ctx)
		}
	}
}

// housekeeping is the periodic work: relist the runtime, delete mirror
// pods whose static pod is gone, and tear down the volumes of pods gone
// while berth was not looking.
func (m *Manager) housekeeping(ctx context.Context) {
	m.relistOnce(ctx)
	m.sweepMirrors(ctx)
	m.sweepOrphanedVolumes(ctx)
}

// Healthy returns nil while the relist loop has run recently.
func (m *Manager) Healthy() error {
	if err := m.relister.Healthy(); err != nil {
		return fmt.Errorf("pod manager: %w", err)
	}
	return nil
}

// RunningPods is the number of pods with a ready sandbox at the last relist.
func (m *Manager) RunningPods() int {
	return m.relister.RunningPods()
}

// podChanged hands a pod's new version to its worker. A pod new to the
// manager is admitted or rejected first; mirror pods are not run, they
// show the static pods.
func (m *Manager) podChanged(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName != m.cfg.NodeName {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	w, known := m.workers[pod.UID]
	switch {
	case isMirrorPod(pod):
		m.mirrorChangedLocked(pod)
	case known && !w.static:
		prev := w.pod
		w.pod, w.removed = pod, false
		if !w.sent.echo(prev, pod) {
			w.wakeUp()
		}
	case known:
		// A static pod's UID: not the API's to change.
	case !m.sources.apiSynced:
		m.sources.pending[pod.UID] = pod
	default:
		m.addPodLocked(pod, false)
	}
}

// podDeleted tells a pod's worker that the pod is gone from the API.
func (m *Manager) podDeleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if isMirrorPod(pod) {
		m.mirrorDeletedLocked(pod)
		return
	}
	delete(m.sources.pending, pod.UID)
	if w, ok := m.workers[pod.UID]; ok && !w.static {
		w.removed = true
		w.wakeUp()
	}
}

// admitPendingLocked admits the pods of the API's first list, oldest first.
// m.mu must be held.
func (m *Manager) admitPendingLocked() {
	list := make([]*v1.Pod, 0, len(m.sources.pending))
	for _, p := range m.sources.pending {
		list = append(list, p)
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return podKey(a) < podKey(b)
	})
	for _, p := range list {
		m.addPodLocked(p, false)
	}
	m.sources.pending = nil
}

// addPodLocked admits a pod new to the manager and starts its worker; a
// rejected pod's worker publishes the rejection. m.mu must be held.
func (m *Manager) addPodLocked(pod *v1.Pod, static bool) {
	w := newPodWorker(m, pod.UID, static)
	w.pod = pod
	w.rejection = m.admitLocked(pod, static)
	m.startWorkerLocked(w)
}

// startWorkerLocked registers the worker, starts its goroutine and wakes
// it. m.mu must be held.
func (m *Manager) startWorkerLocked(w *podWorker) {
	m.workers[w.uid] = w
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		w.loop(m.ctx)
	}()
	w.wakeUp()
}

// sourcesReadyLocked tells whether every source of pods has delivered its
// first complete view. m.mu must be held.
func (m *Manager) sourcesReadyLocked() bool {
	return m.sources.apiSynced && m.sources.staticSynced
}

// podView is what a worker knows of its pod at the start of a sync.
type podView struct {
	// pod is the newest version; nil for a pod known only to the runtime.
	pod *v1.Pod
	// removed tells that the pod is gone from the API.
	removed bool
	// mirror is the mirror pod of the static pod's name, of any version.
	mirror *v1.Pod
	// rejection is why the pod was not admitted; nil when it was.
	rejection *rejection
	// waiting tells that another version of the static pod still stops.
	waiting bool
}

// snapshot returns what the worker knows of its pod.
func (m *Manager) snapshot(w *podWorker) podView {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := podView{pod: w.pod, removed: w.removed || w.pod == nil, rejection: w.rejection}
	if w.static && w.pod != nil {
		v.mirror = m.static.mirrors[podKey(w.pod)]
		v.waiting = m.predecessorLocked(w)
	}
	return v
}

// podOf returns the newest version of the worker's pod.
func (m *Manager) podOf(w *podWorker) *v1.Pod {
	m.mu.Lock()
	defer m.mu.Unlock()
	return w.pod
}

// schedule sets when the worker syncs again without news.
func (m *Manager) schedule(w *podWorker, after time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.nextSync = m.cfg.Clock.Now().Add(after)
}

// retire removes a worker whose pod is gone for good, unless news came in
// meanwhile; it tells whether the worker may stop.
func (m *Manager) retire(w *podWorker) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-w.wake:
		// Something happened since the last sync: sync once more.
		w.wakeUp()
		return false
	default:
	}
	delete(m.workers, w.uid)
	// Its resources are free: resizes waiting for room may fit now.
	m.retryDeferredResizesLocked()
	if w.static && w.pod != nil {
		// The next version of the static pod may start now.
		m.wakeStaticLocked(podKey(w.pod))
	}
	return true
}

// services returns the services whose variables the pod's containers get:
// those of its namespace when service links are on, and the API server's.
func (m *Manager) servicesFor(pod *v1.Pod) ([]*v1.Service, error) {
	var out []*v1.Service
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		list, err := m.informers.services.Services(pod.Namespace).List(labels.Everything())
		if err != nil {
			return nil, fmt.Errorf("list services of namespace %s: %w", pod.Namespace, err)
		}
		out = append(out, list...)
	}
	if pod.Namespace != metav1.NamespaceDefault || (pod.Spec.EnableServiceLinks != nil && !*pod.Spec.EnableServiceLinks) {
		if s, err := m.informers.services.Services(metav1.NamespaceDefault).Get("kubernetes"); err == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// hostIPs returns the node's IPs as strings, primary first.
func (m *Manager) hostIPs() []string {
	var out []string
	for _, ip := range m.cfg.NodeIPs() {
		out = append(out, ip.String())
	}
	return out
}

// resourceParams are the node's settings of container resources.
func (m *Manager) resourceParams() podruntime.ResourceParams {
	k := m.cfg.Kubelet
	p := podruntime.ResourceParams{CFSQuota: k.CPUCFSQuota == nil || *k.CPUCFSQuota, MemoryCapacity: m.nodeMem}
	if k.CPUCFSQuotaPeriod != nil {
		p.QuotaPeriod = k.CPUCFSQuotaPeriod.Duration
	}
	return p
}
