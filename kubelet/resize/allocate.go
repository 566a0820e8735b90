package resize

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Reasons of the PodResizePending condition.
const (
	ReasonDeferred   = v1.PodReasonDeferred
	ReasonInfeasible = v1.PodReasonInfeasible
)

// Why a resize does not fit now, in the kubelet's admission words; the
// condition says Deferred for either, the event names them.
const (
	ReasonOutOfCPU    = "OutOfcpu"
	ReasonOutOfMemory = "OutOfmemory"
)

// Resizable tells whether a container is resized in place: regular
// containers and sidecars are. Other init containers have run to completion
// before the regular ones start; the API server lets them be resized only on
// nodes that declare the feature, which berth does not.
func Resizable(c *v1.Container, init bool) bool {
	return !init || (c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways)
}

// visit calls f for every resizable container of pod, sidecars first.
func visit(pod *v1.Pod, f func(c *v1.Container)) {
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; Resizable(c, true) {
			f(c)
		}
	}
	for i := range pod.Spec.Containers {
		f(&pod.Spec.Containers[i])
	}
}

// SpecAllocation returns the resources pod's spec asks for its resizable
// containers, by name.
func SpecAllocation(pod *v1.Pod) map[string]v1.ResourceRequirements {
	out := map[string]v1.ResourceRequirements{}
	visit(pod, func(c *v1.Container) { out[c.Name] = *c.Resources.DeepCopy() })
	return out
}

// Apply returns pod with the allocated resources in place of its spec's, a
// copy when they differ, and tells whether they did. Containers that alloc
// does not know keep their spec.
func Apply(pod *v1.Pod, alloc map[string]v1.ResourceRequirements) (*v1.Pod, bool) {
	differs := false
	visit(pod, func(c *v1.Container) {
		if a, ok := alloc[c.Name]; ok && !equalRequirements(a, c.Resources) {
			differs = true
		}
	})
	if !differs {
		return pod, false
	}
	out := pod.DeepCopy()
	visit(out, func(c *v1.Container) {
		if a, ok := alloc[c.Name]; ok {
			c.Resources = *a.DeepCopy()
		}
	})
	return out, true
}

// Requests returns the CPU and memory a pod takes from the node, as the
// scheduler counts them (init containers, sidecars and overhead included).
func Requests(pod *v1.Pod) v1.ResourceList {
	all := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	return v1.ResourceList{v1.ResourceCPU: *all.Cpu(), v1.ResourceMemory: *all.Memory()}
}

// Verdict is the outcome of Fit: an empty Reason admits the resize, else it
// is ReasonInfeasible, or ReasonOutOfCPU or ReasonOutOfMemory (deferred),
// with the kubelet's message.
type Verdict struct {
	Reason  string
	Message string
}

// Fit decides whether a pod with its desired resources fits the node:
// used is what the node's other pods were allocated. A pod asking for more
// than the node's allocatable has no place here at all (Infeasible); one
// that only lacks what others hold now waits for them (Deferred). The API
// server refuses the first kind already (its PodResizeValidator); the
// node's own check stays for an allocatable that shrank since.
func Fit(desired *v1.Pod, used, allocatable v1.ResourceList) Verdict {
	want := Requests(desired)
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		req, capacity := amount(want, name), amount(allocatable, name)
		if req > capacity {
			return Verdict{Reason: ReasonInfeasible, Message: fmt.Sprintf(
				"Node didn't have enough capacity: %s, requested: %d, capacity: %d", name, req, capacity)}
		}
	}
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		req, taken, capacity := amount(want, name), amount(used, name), amount(allocatable, name)
		if req > capacity-taken {
			reason := ReasonOutOfCPU
			if name == v1.ResourceMemory {
				reason = ReasonOutOfMemory
			}
			return Verdict{Reason: reason, Message: fmt.Sprintf(
				"Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d", name, req, taken, capacity)}
		}
	}
	return Verdict{}
}

// amount is a quantity as the kubelet's admission counts it: CPU in
// millicores, memory in bytes.
func amount(list v1.ResourceList, name v1.ResourceName) int64 {
	q, ok := list[name]
	if !ok {
		return 0
	}
	if name == v1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

// Add adds b to a, resource by resource.
func Add(a, b v1.ResourceList) v1.ResourceList {
	out := v1.ResourceList{}
	for name, q := range a {
		out[name] = q.DeepCopy()
	}
	for name, q := range b {
		sum := out[name]
		if sum.Format == "" {
			sum = *resource.NewQuantity(0, q.Format)
		}
		sum.Add(q)
		out[name] = sum
	}
	return out
}
