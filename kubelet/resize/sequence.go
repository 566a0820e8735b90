package resize

// OpKind is one kind of change to a pod's cgroups.
type OpKind int

// The changes a resize is made of.
const (
	// OpPodMemory sets the pod cgroup's memory limit.
	OpPodMemory OpKind = iota
	// OpPodCPUQuota sets the pod cgroup's CFS quota.
	OpPodCPUQuota
	// OpPodCPUShares sets the pod cgroup's CPU shares (weight).
	OpPodCPUShares
	// OpContainer updates one container through CRI.
	OpContainer
)

// Op is one change; Step is set for OpContainer.
type Op struct {
	Kind OpKind
	Step Step
}

// Sequence orders a plan's container updates and the pod cgroup's changes
// from cur to want (nil when the node does not manage the pod cgroup), as
// the kubelet does: memory before CPU, and for each the pod cgroup grows
// before its containers and shrinks after them, so that a container's
// setting never exceeds its parent's. restarting tells that containers are
// being restarted with new resources, which may change the pod's total too.
func Sequence(p Plan, cur, want *PodCgroup, restarting bool) []Op {
	var ops []Op
	pod := func(kind OpKind, from, to int64, grow bool) {
		if cur == nil || from == to {
			return
		}
		if larger(to, from) == grow {
			ops = append(ops, Op{Kind: kind})
		}
	}
	containers := func(steps []Step) {
		for _, s := range steps {
			ops = append(ops, Op{Kind: OpContainer, Step: s})
		}
	}
	var c, w PodCgroup
	if cur != nil {
		c, w = *cur, *want
	}
	if len(p.Memory) > 0 || restarting {
		pod(OpPodMemory, c.MemoryLimit, w.MemoryLimit, true)
		containers(p.Memory)
		pod(OpPodMemory, c.MemoryLimit, w.MemoryLimit, false)
	}
	if len(p.CPU) > 0 || restarting {
		pod(OpPodCPUQuota, c.CPUQuota, w.CPUQuota, true)
		pod(OpPodCPUShares, c.CPUShares, w.CPUShares, true)
		containers(p.CPU)
		pod(OpPodCPUShares, c.CPUShares, w.CPUShares, false)
		pod(OpPodCPUQuota, c.CPUQuota, w.CPUQuota, false)
	}
	return ops
}

// larger tells whether limit a allows more than b; Unlimited allows most.
func larger(a, b int64) bool {
	switch {
	case a == b:
		return false
	case a == Unlimited:
		return true
	case b == Unlimited:
		return false
	}
	return a > b
}
