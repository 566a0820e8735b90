package pods

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

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
)

// Timing of the relist loop.
const (
	relistPeriod = time.Second
	// relistThreshold is how old the last relist may be while the manager
	// counts as healthy (the kubelet's PLEG threshold).
	relistThreshold = 3 * time.Minute
)

// Manager runs the pods bound to the node. Make it with New and run it with
// Run.
type Manager struct {
	cfg       Config
	nodeCPU   int64
	nodeMem   int64
	pods      cache.SharedIndexInformer
	podsF     informers.SharedInformerFactory
	servicesF informers.SharedInformerFactory
	services  corelisters.ServiceLister

	mu          sync.Mutex
	ctx         context.Context
	workers     map[types.UID]*podWorker
	synced      bool
	relist      relistState
	runtimeName string
	wg          sync.WaitGroup
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
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
	servicesF := informers.NewSharedInformerFactory(cfg.Client, 0)
	m := &Manager{
		cfg:       cfg,
		nodeCPU:   int64(runtime.NumCPU()) * 1000,
		nodeMem:   mem,
		podsF:     podsF,
		pods:      podsF.Core().V1().Pods().Informer(),
		servicesF: servicesF,
		services:  servicesF.Core().V1().Services().Lister(),
		workers:   map[types.UID]*podWorker{},
	}
	return m, nil
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
	m.mu.Unlock()
	reg, err := m.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.podChanged(obj) },
		UpdateFunc: func(_, obj any) { m.podChanged(obj) },
		DeleteFunc: m.podDeleted,
	})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	m.podsF.Start(ctx.Done())
	m.servicesF.Start(ctx.Done())
	defer func() {
		m.podsF.Shutdown()
		m.servicesF.Shutdown()
		m.wg.Wait()
	}()
	for _, ok := range m.podsF.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return nil
		}
	}
	for _, ok := range m.servicesF.WaitForCacheSync(ctx.Done()) {
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
	m.synced = true
	m.mu.Unlock()
	m.relistOnce(ctx)
	ticker := m.cfg.Clock.NewTicker(relistPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C():
			m.relistOnce(ctx)
		}
	}
}

// Healthy returns nil while the relist loop has run recently.
func (m *Manager) Healthy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.relist.last.IsZero() {
		return errors.New("pod manager: runtime not listed yet")
	}
	if age := m.cfg.Clock.Since(m.relist.last); age > relistThreshold {
		return fmt.Errorf("pod manager: last runtime relist %s ago (threshold %s)", age.Round(time.Second), relistThreshold)
	}
	return nil
}

// RunningPods is the number of pods with a ready sandbox at the last relist.
func (m *Manager) RunningPods() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.relist.running
}

// podChanged hands a pod's new version to its worker, making the worker on
// first sight.
func (m *Manager) podChanged(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName != m.cfg.NodeName {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.workerLocked(pod.UID)
	w.pod, w.removed = pod, false
	w.wakeUp()
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
	if w, ok := m.workers[pod.UID]; ok {
		w.removed = true
		w.wakeUp()
	}
}

// workerLocked returns the worker of uid, making and starting it if needed.
// m.mu must be held.
func (m *Manager) workerLocked(uid types.UID) *podWorker {
	if w, ok := m.workers[uid]; ok {
		return w
	}
	w := newPodWorker(m, uid)
	m.workers[uid] = w
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		w.loop(m.ctx)
	}()
	return w
}

// snapshot returns what the worker of uid knows of its pod: the newest
// version, and whether the pod is gone from the API.
func (m *Manager) snapshot(w *podWorker) (*v1.Pod, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return w.pod, w.removed || w.pod == nil
}

// scheduleLocked sets when the worker syncs again without news.
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
	return true
}

// services returns the services whose variables the pod's containers get:
// those of its namespace when service links are on, and the API server's.
func (m *Manager) servicesFor(pod *v1.Pod) ([]*v1.Service, error) {
	var out []*v1.Service
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		list, err := m.services.Services(pod.Namespace).List(labels.Everything())
		if err != nil {
			return nil, fmt.Errorf("list services of namespace %s: %w", pod.Namespace, err)
		}
		out = append(out, list...)
	}
	if pod.Namespace != metav1.NamespaceDefault || (pod.Spec.EnableServiceLinks != nil && !*pod.Spec.EnableServiceLinks) {
		if s, err := m.services.Services(metav1.NamespaceDefault).Get("kubernetes"); err == nil {
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
func (m *Manager) resourceParams() resourceParams {
	k := m.cfg.Kubelet
	p := resourceParams{CFSQuota: k.CPUCFSQuota == nil || *k.CPUCFSQuota, MemoryCapacity: m.nodeMem}
	if k.CPUCFSQuotaPeriod != nil {
		p.QuotaPeriod = k.CPUCFSQuotaPeriod.Duration
	}
	return p
}
