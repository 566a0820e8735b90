package devices

import (
	"context"
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// readCheckpoint restores the assignments and the resources known before
// a restart. The resources have no devices until their plugins register
// again; the assigned devices stay taken meanwhile.
func (m *Manager) readCheckpoint(ctx context.Context) error {
	cp, err := loadCheckpoint(m.checkpointPath())
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range cp.Resources {
		m.resourceLocked(name)
	}
	for _, e := range cp.Entries {
		resp := &pluginapi.ContainerAllocateResponse{}
		if err := proto.Unmarshal(e.Response, resp); err != nil {
			return fmt.Errorf("device checkpoint: pod %s container %s: %w", e.PodUID, e.Container, err)
		}
		m.resourceLocked(e.Resource)
		m.pods.set(e.PodUID, e.Container, e.Resource, &assignment{ids: e.DeviceIDs, resp: resp})
	}
	klog.FromContext(ctx).Info("Device checkpoint restored", "assignments", len(cp.Entries), "resources", len(cp.Resources))
	return nil
}

// AllocateError tells why a pod cannot have its devices. It is ErrAllocate
// for errors.Is; its message is the cause alone, as the kubelet words it in
// the pod's rejection ("Allocate failed due to <cause>, which is
// unexpected").
type AllocateError struct {
	// Pod names the pod (namespace/name).
	Pod string
	// Err is the cause.
	Err error
}

// Error returns the cause's message.
func (e *AllocateError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *AllocateError) Unwrap() error { return e.Err }

// Is makes the error ErrAllocate.
func (e *AllocateError) Is(target error) bool { return target == ErrAllocate }

// Admit allocates devices to every container of pod that asks for a
// device plugin resource: init containers first, whose devices the
// containers after them may reuse, as under the kubelet. A container that
// has its devices already (admitted before a restart of berth) keeps them.
// When some container cannot get its devices, none of the pod's new
// allocations are kept and the error (ErrAllocate) says why; the pod is to
// be rejected. Extended resources no plugin registered are not the
// manager's (cluster-level resources) and are skipped.
func (m *Manager) Admit(ctx context.Context, pod *v1.Pod) error {
	m.allocMu.Lock()
	defer m.allocMu.Unlock()
	log := klog.FromContext(ctx).WithValues("pod", klog.KObj(pod))
	ctx = klog.NewContext(ctx, log)
	reuse := map[string]map[string]bool{}
	var added [][2]string // the container and resource of each new assignment
	fail := func(err error) error {
		m.mu.Lock()
		for _, cr := range added {
			delete(m.pods[pod.UID][cr[0]], cr[1])
			if len(m.pods[pod.UID][cr[0]]) == 0 {
				delete(m.pods[pod.UID], cr[0])
			}
		}
		if len(m.pods[pod.UID]) == 0 {
			delete(m.pods, pod.UID)
		}
		m.mu.Unlock()
		return &AllocateError{Pod: klog.KObj(pod).String(), Err: err}
	}
	containers := make([]v1.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	containers = append(append(containers, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for i := range containers {
		c := &containers[i]
		init := i < len(pod.Spec.InitContainers)
		for _, res := range m.requested(c) {
			created, ids, err := m.allocateOne(ctx, pod, c.Name, res.name, res.count, reuse[res.name])
			if err != nil {
				return fail(err)
			}
			if created {
				added = append(added, [2]string{c.Name, res.name})
			}
			if reuse[res.name] == nil {
				reuse[res.name] = map[string]bool{}
			}
			for _, id := range ids {
				// A finished init container's devices go to the next
				// containers; a sidecar (restartable init) or app
				// container keeps its own.
				if init && !isRestartable(c) {
					reuse[res.name][id] = true
				} else {
					delete(reuse[res.name], id)
				}
			}
		}
	}
	if len(added) == 0 {
		return nil
	}
	// Capacity and allocatable count devices, not free ones: the node
	// status does not change.
	if err := m.writeCheckpoint(); err != nil {
		return fail(err)
	}
	return nil
}

func isRestartable(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// request is a container's count of one device plugin resource.
type request struct {
	name  string
	count int
}

// requested returns the device plugin resources the container asks for,
// sorted by name. Extended resources cannot be overcommitted, so requests
// equal limits and the limits say it all.
func (m *Manager) requested(c *v1.Container) []request {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []request
	for _, name := range m.requestedLocked(c) {
		q := c.Resources.Limits[v1.ResourceName(name)]
		out = append(out, request{name: name, count: int(q.Value())})
	}
	return out
}

// allocateOne gives a container count devices of resource, taking those
// in reuse first. It returns whether a new assignment was made and the
// container's devices.
func (m *Manager) allocateOne(ctx context.Context, pod *v1.Pod, container, resource string, count int, reuse map[string]bool) (bool, []string, error) {
	m.mu.Lock()
	if a := m.pods.get(pod.UID, container, resource); a != nil {
		m.mu.Unlock()
		if len(a.ids) != count {
			return false, nil, fmt.Errorf("pod %q container %q changed request for resource %q from %d to %d", pod.UID, container, resource, len(a.ids), count)
		}
		return false, a.ids, nil
	}
	r := m.resources[resource]
	if r == nil || r.plugin == nil {
		m.mu.Unlock()
		return false, nil, fmt.Errorf("cannot allocate unregistered device %s", resource)
	}
	p := r.plugin
	healthy := r.healthy()
	if len(healthy) == 0 {
		m.mu.Unlock()
		return false, nil, fmt.Errorf("no healthy devices present; cannot allocate unhealthy devices %s", resource)
	}
	var chosen []string
	for _, id := range sortedKeys(reuse) {
		if len(chosen) < count && healthy[id] {
			chosen = append(chosen, id)
		}
	}
	inUse := m.pods.inUse(resource)
	var available []string
	for _, id := range sortedKeys(healthy) {
		if !inUse[id] {
			available = append(available, id)
		}
	}
	m.mu.Unlock()
	if need := count - len(chosen); len(available) < need {
		return false, nil, fmt.Errorf("requested number of devices unavailable for %s. Requested: %d, Available: %d", resource, need, len(available))
	}
	chosen, err := m.choose(ctx, p, chosen, available, count)
	if err != nil {
		return false, nil, err
	}
	start := m.cfg.Clock.Now()
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	resp, err := p.allocate(callCtx, chosen)
	cancel()
	m.metrics.allocDuration.WithLabelValues(resource).Observe(m.cfg.Clock.Since(start).Seconds())
	if err != nil {
		return false, nil, fmt.Errorf("resource %s: %w", resource, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// The plugin was called without the lock: make sure no other pod got
	// these devices meanwhile (admissions are serialised, so only a
	// restored checkpoint could have).
	inUse = m.pods.inUse(resource)
	for _, id := range chosen {
		if inUse[id] && !reuse[id] {
			return false, nil, fmt.Errorf("device %s of %s was taken during allocation", id, resource)
		}
	}
	m.pods.set(pod.UID, container, resource, &assignment{ids: chosen, resp: resp})
	klog.FromContext(ctx).V(2).Info("Devices allocated", "container", container, "resource", resource, "devices", chosen)
	return true, chosen, nil
}

// choose completes chosen (devices already picked) to count devices from
// available: the plugin's preference first, when it offers one, then in
// ID order.
func (m *Manager) choose(ctx context.Context, p *plugin, chosen, available []string, count int) ([]string, error) {
	taken := map[string]bool{}
	for _, id := range chosen {
		taken[id] = true
	}
	if len(chosen) < count {
		callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
		pref, err := p.preferred(callCtx, append(append([]string{}, chosen...), available...), chosen, count)
		cancel()
		if err != nil {
			return nil, err
		}
		availableSet := map[string]bool{}
		for _, id := range available {
			availableSet[id] = true
		}
		for _, id := range pref {
			if len(chosen) < count && availableSet[id] && !taken[id] {
				chosen = append(chosen, id)
				taken[id] = true
			}
		}
	}
	for _, id := range available {
		if len(chosen) < count && !taken[id] {
			chosen = append(chosen, id)
			taken[id] = true
		}
	}
	return chosen, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Release frees the devices of the pod with uid: it has terminated or is
// gone.
func (m *Manager) Release(ctx context.Context, uid types.UID) {
	m.mu.Lock()
	_, had := m.pods[uid]
	delete(m.pods, uid)
	m.mu.Unlock()
	if had {
		m.afterRelease(ctx, []types.UID{uid})
	}
}

// Retain frees the devices of every pod not in active: after a restart,
// the pods that ended while berth was away.
func (m *Manager) Retain(ctx context.Context, active map[types.UID]bool) {
	var gone []types.UID
	m.mu.Lock()
	for uid := range m.pods {
		if !active[uid] {
			gone = append(gone, uid)
			delete(m.pods, uid)
		}
	}
	m.mu.Unlock()
	if len(gone) > 0 {
		m.afterRelease(ctx, gone)
	}
}

func (m *Manager) afterRelease(ctx context.Context, uids []types.UID) {
	log := klog.FromContext(ctx)
	log.V(2).Info("Devices of pods released", "podUIDs", uids)
	if err := m.writeCheckpoint(); err != nil {
		log.Error(err, "Writing the device checkpoint failed")
	}
}

// PodDevices returns the devices of every container of the pod with uid,
// by container name and resource, sorted.
func (m *Manager) PodDevices(uid types.UID) map[string]map[string][]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]map[string][]string{}
	for cname, res := range m.pods[uid] {
		out[cname] = map[string][]string{}
		for rname, a := range res {
			ids := append([]string{}, a.ids...)
			sort.Strings(ids)
			out[cname][rname] = ids
		}
	}
	return out
}
