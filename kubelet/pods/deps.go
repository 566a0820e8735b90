package pods

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	internalapi "k8s.io/cri-api/pkg/apis"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/prober"
	"github.com/berthnode/berth/kubelet/resize"
)

// workerDeps is what every pod worker needs from the node. The manager
// makes it once; the workers share it and only read it.
type workerDeps struct {
	// nodeName is this node's name.
	nodeName string
	// client publishes statuses, deletes finished pods and keeps mirror
	// pods.
	client kubernetes.Interface
	// cri observes the pods' sandboxes and containers and resizes them.
	cri internalapi.RuntimeService
	// runner does the pods' work on the runtime; probing is the probe
	// workers' shared configuration.
	runner  *podruntime.Runner
	probing *prober.Config
	// volumes sets up and tears down pod volumes.
	volumes Volumes
	// recorder emits events about pods; clock times everything.
	recorder record.EventRecorder
	clock    clock.WithTicker
	// syncFrequency is how often a pod is synced when nothing happens.
	syncFrequency time.Duration
	// files are where the pods' files and cgroups live.
	files podFiles
	// resources are the node's settings of container resources; resizes
	// keeps each pod's allocated resources.
	resources podruntime.ResourceParams
	resizes   resize.Store
	// hostIPs returns the node's IPs, primary first.
	hostIPs func() []string
	// runtimeName names the runtime in container IDs.
	runtimeName *runtimeName
	// observeStart records a pod's time from first seen to running.
	observeStart func(seconds float64)
	// relisted tells whether the last relist found the pod with uid, and
	// whether the runtime has been listed at all.
	relisted func(uid types.UID) (found, listed bool)
}

// podFiles are where the pods' files and cgroups live on the node.
type podFiles struct {
	// rootDir is the kubelet root directory; podLogsDir holds the pods'
	// log directories.
	rootDir, podLogsDir string
	// cgroupRoot, cgroupDriver and cgroupsPerQOS place the pods' cgroups.
	cgroupRoot, cgroupDriver string
	cgroupsPerQOS            bool
}

// workerHost is what a pod worker asks of the manager that owns it: the
// manager is the one that sees every pod of the node.
type workerHost interface {
	// snapshot returns what the worker knows of its pod at the start of
	// a sync; podOf only its newest version.
	snapshot(w *podWorker) podView
	podOf(w *podWorker) *v1.Pod
	// schedule sets when the worker syncs again without news; retire
	// removes a worker whose pod is gone for good and tells whether it may
	// stop.
	schedule(w *podWorker, after time.Duration)
	retire(w *podWorker) bool
	// markTerminated tells that nothing of the worker's pod runs any more.
	markTerminated(w *podWorker)
	// ShuttingDown tells that the node shuts down: nothing is started.
	ShuttingDown() bool
	// deleteMirror deletes a static pod's mirror pod.
	deleteMirror(ctx context.Context, mirror *v1.Pod) error
	// resizeRoom runs admit, one pod at a time, with what the node's
	// other active pods were allocated and the node's allocatable CPU and
	// memory.
	resizeRoom(ctx context.Context, w *podWorker, admit func(used, allocatable v1.ResourceList))
	// setAllocatedRequests and setResizeDeferred record the worker's
	// allocated requests and whether its resize waits for room;
	// retryDeferredResizes wakes the pods whose resize waits.
	setAllocatedRequests(w *podWorker, reqs v1.ResourceList)
	setResizeDeferred(w *podWorker, deferred bool)
	retryDeferredResizes()
}

// runtimeName is the runtime's name for container IDs, asked once.
type runtimeName struct {
	cri  internalapi.RuntimeService
	mu   sync.Mutex
	name string
}

// get returns the runtime's name ("cri" when the runtime does not say).
func (r *runtimeName) get(ctx context.Context) string {
	r.mu.Lock()
	name := r.name
	r.mu.Unlock()
	if name != "" {
		return name
	}
	v, err := r.cri.Version(ctx, "v1")
	if err != nil || v.GetRuntimeName() == "" {
		klog.FromContext(ctx).V(2).Info("Runtime name unknown; container IDs use cri://", "err", err)
		return "cri"
	}
	r.mu.Lock()
	r.name = v.GetRuntimeName()
	r.mu.Unlock()
	return v.GetRuntimeName()
}

// newWorkerDeps gathers the workers' dependencies from the manager's
// configuration.
func (m *Manager) newWorkerDeps(runner *podruntime.Runner) *workerDeps {
	k := m.cfg.Kubelet
	return &workerDeps{
		nodeName:      m.cfg.NodeName,
		client:        m.cfg.Client,
		cri:           m.cfg.Runtime,
		runner:        runner,
		probing:       &m.probing,
		volumes:       m.cfg.Volumes,
		recorder:      m.cfg.Recorder,
		clock:         m.cfg.Clock,
		syncFrequency: m.cfg.syncFrequency(),
		files: podFiles{
			rootDir: m.cfg.RootDir, podLogsDir: m.cfg.PodLogsDir,
			cgroupRoot: k.CgroupRoot, cgroupDriver: k.CgroupDriver, cgroupsPerQOS: m.cfg.cgroupsPerQOS(),
		},
		resources:    m.resourceParams(),
		resizes:      resize.Store{Root: m.cfg.RootDir},
		hostIPs:      m.hostIPs,
		runtimeName:  &runtimeName{cri: m.cfg.Runtime},
		observeStart: func(s float64) { m.metrics.startDuration.Observe(s) },
		relisted:     m.relister.Found,
	}
}
