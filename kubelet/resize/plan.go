package resize

import (
	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Amounts are the CPU (millicores) and memory (bytes) settings of a
// container that a resize changes; zero means not set.
type Amounts struct {
	CPURequest    int64
	CPULimit      int64
	MemoryRequest int64
	MemoryLimit   int64
}

// AmountsOf reads the amounts of resource requirements.
func AmountsOf(r v1.ResourceRequirements) Amounts {
	return Amounts{
		CPURequest:    r.Requests.Cpu().MilliValue(),
		CPULimit:      r.Limits.Cpu().MilliValue(),
		MemoryRequest: r.Requests.Memory().Value(),
		MemoryLimit:   r.Limits.Memory().Value(),
	}
}

func sameAmounts(a, b v1.ResourceRequirements) bool { return AmountsOf(a) == AmountsOf(b) }

// Step updates one running container's cgroups for one resource: From is
// what it runs with, To what it gets (only that resource differs).
type Step struct {
	Name        string
	ContainerID string
	From, To    v1.ResourceRequirements
}

// Plan is how a pod's running containers get their allocated resources.
type Plan struct {
	// Restart names the containers whose resizePolicy asks for a restart
	// for a resource that changes, by name to running ID.
	Restart map[string]string
	// Memory and CPU are the updates in place, in the order to make them:
	// the containers that shrink before those that grow, so that the
	// pod's total never goes beyond the larger of its old and new totals.
	Memory []Step
	CPU    []Step
}

// Empty tells whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Restart) == 0 && len(p.Memory) == 0 && len(p.CPU) == 0 }

// PlanFor plans the resize of pod (carrying its allocated resources) whose
// running containers are running (name to ID), from what rec says they run
// with.
func PlanFor(pod *v1.Pod, rec *Record, running map[string]string) Plan {
	p := Plan{Restart: map[string]string{}}
	visit(pod, func(c *v1.Container) {
		id, ok := running[c.Name]
		if !ok {
			return
		}
		cur := rec.Current(c.Name, id)
		from, to := AmountsOf(cur), AmountsOf(c.Resources)
		if from == to {
			return
		}
		memChanges := from.MemoryLimit != to.MemoryLimit || from.MemoryRequest != to.MemoryRequest
		cpuChanges := from.CPULimit != to.CPULimit || from.CPURequest != to.CPURequest
		if (memChanges && restarts(c, v1.ResourceMemory)) || (cpuChanges && restarts(c, v1.ResourceCPU)) {
			p.Restart[c.Name] = id
			return
		}
		if memChanges {
			next := Mix(cur, c.Resources, v1.ResourceMemory)
			down := shrinks(from.MemoryLimit, to.MemoryLimit, from.MemoryRequest, to.MemoryRequest)
			p.Memory = addStep(p.Memory, Step{Name: c.Name, ContainerID: id, From: cur, To: next}, down)
			cur = next
		}
		if cpuChanges {
			down := shrinks(from.CPULimit, to.CPULimit, from.CPURequest, to.CPURequest)
			p.CPU = addStep(p.CPU, Step{Name: c.Name, ContainerID: id, From: cur, To: Mix(cur, c.Resources, v1.ResourceCPU)}, down)
		}
	})
	return p
}

// Mix returns base with the requests and limits of resource taken from
// next (removed where next has none).
func Mix(base, next v1.ResourceRequirements, resource v1.ResourceName) v1.ResourceRequirements {
	out := *base.DeepCopy()
	out.Requests = mixList(out.Requests, next.Requests, resource)
	out.Limits = mixList(out.Limits, next.Limits, resource)
	return out
}

func mixList(base, next v1.ResourceList, resource v1.ResourceName) v1.ResourceList {
	q, ok := next[resource]
	if !ok {
		delete(base, resource)
		if len(base) == 0 {
			return nil
		}
		return base
	}
	if base == nil {
		base = v1.ResourceList{}
	}
	base[resource] = q.DeepCopy()
	return base
}

// restarts tells whether the container's resizePolicy restarts it when
// resource changes (the default is NotRequired).
func restarts(c *v1.Container, resource v1.ResourceName) bool {
	for _, p := range c.ResizePolicy {
		if p.ResourceName == resource {
			return p.RestartPolicy == v1.RestartContainer
		}
	}
	return false
}

// shrinks tells the direction of a change the way the kubelet orders it:
// by the limit when it changes, else by the request.
func shrinks(fromLimit, toLimit, fromRequest, toRequest int64) bool {
	if fromLimit != toLimit {
		return toLimit < fromLimit
	}
	return toRequest < fromRequest
}

func addStep(list []Step, s Step, first bool) []Step {
	if first {
		return append([]Step{s}, list...)
	}
	return append(list, s)
}

// InProgress tells whether some running container (name to ID) does not
// run with its allocated resources yet.
func InProgress(pod *v1.Pod, rec *Record, running map[string]string) bool {
	busy := false
	visit(pod, func(c *v1.Container) {
		if id, ok := running[c.Name]; ok && !sameAmounts(rec.Current(c.Name, id), c.Resources) {
			busy = true
		}
	})
	return busy
}

// Unlimited marks a pod cgroup setting without a limit.
const Unlimited = -1

// PodCgroup are the settings of a pod's own cgroup, as the kubelet derives
// them from its containers: CPU shares from the requests, and a CFS quota
// and memory limit only when every container has that limit.
type PodCgroup struct {
	CPUShares int64
	// CPUQuota is in microseconds per CPUPeriod; Unlimited without.
	CPUQuota  int64
	CPUPeriod int64
	// MemoryLimit is in bytes; Unlimited without.
	MemoryLimit int64
}

// PodCgroupFor computes the pod cgroup of pod (with its allocated
// resources). cfsQuota tells whether CPU limits are enforced with CFS
// quota, of periodUsec microseconds.
func PodCgroupFor(pod *v1.Pod, cfsQuota bool, periodUsec int64) PodCgroup {
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	limits := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	cpuLimited, memLimited := true, true
	visitAll(pod, func(c *v1.Container) {
		cpuLimited = cpuLimited && !c.Resources.Limits.Cpu().IsZero()
		memLimited = memLimited && !c.Resources.Limits.Memory().IsZero()
	})
	out := PodCgroup{CPUShares: MilliCPUToShares(reqs.Cpu().MilliValue()), CPUQuota: Unlimited, CPUPeriod: periodUsec, MemoryLimit: Unlimited}
	if cfsQuota && cpuLimited {
		out.CPUQuota = MilliCPUToQuota(limits.Cpu().MilliValue(), periodUsec)
	}
	if memLimited {
		out.MemoryLimit = limits.Memory().Value()
	}
	return out
}

func visitAll(pod *v1.Pod, f func(c *v1.Container)) {
	for i := range pod.Spec.InitContainers {
		f(&pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		f(&pod.Spec.Containers[i])
	}
}

// CPU constants of the kubelet's cgroup settings.
const (
	minShares     = 2
	maxShares     = 262144
	sharesPerCPU  = 1024
	minQuotaUsec  = 1000
	milliCPUToCPU = 1000
)

// MilliCPUToShares converts a CPU request to cgroup v1 shares.
func MilliCPUToShares(milli int64) int64 {
	if milli == 0 {
		return minShares
	}
	return min(max(milli*sharesPerCPU/milliCPUToCPU, minShares), maxShares)
}

// MilliCPUToQuota converts a CPU limit to a CFS quota per period.
func MilliCPUToQuota(milli, periodUsec int64) int64 {
	if milli == 0 {
		return Unlimited
	}
	return max(milli*periodUsec/milliCPUToCPU, minQuotaUsec)
}
