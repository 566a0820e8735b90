package node

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/kubelet/config"
	"github.com/berthnode/berth/kubelet/devices"
)

// KubeletVersion is the kubelet version berth reports: the Kubernetes
// release whose kubelet it stands in for.
const KubeletVersion = "v1.37.2"

// threshold is an eviction threshold: an absolute quantity or a percentage
// of the capacity.
type threshold struct {
	quantity *resource.Quantity
	percent  float64
}

// parseThreshold parses "100Mi" or "10%".
func parseThreshold(s string) (threshold, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 100 {
			return threshold{}, fmt.Errorf("threshold %q: bad percentage", s)
		}
		return threshold{percent: v}, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return threshold{}, fmt.Errorf("threshold %q: %w", s, err)
	}
	return threshold{quantity: &q}, nil
}

// value returns the threshold for a resource of the given capacity.
func (t threshold) value(capacity int64) int64 {
	if t.quantity != nil {
		return t.quantity.Value()
	}
	return int64(float64(capacity) * t.percent / 100)
}

// hardThreshold returns the hard eviction threshold for signal, 0 if none.
func hardThreshold(kc *config.KubeletConfiguration, signal string, capacity int64) (int64, error) {
	s, ok := kc.EvictionHard[signal]
	if !ok {
		return 0, nil
	}
	t, err := parseThreshold(s)
	if err != nil {
		return 0, fmt.Errorf("evictionHard %s: %w", signal, err)
	}
	return t.value(capacity), nil
}

// capacity returns the node's capacity.
func capacity(info MachineInfo, usage Usage, maxPods int32) v1.ResourceList {
	return v1.ResourceList{
		v1.ResourceCPU:              *resource.NewQuantity(int64(info.CPUs), resource.DecimalSI),
		v1.ResourceMemory:           *resource.NewQuantity(info.MemoryBytes, resource.BinarySI),
		v1.ResourcePods:             *resource.NewQuantity(int64(maxPods), resource.DecimalSI),
		v1.ResourceEphemeralStorage: *resource.NewQuantity(usage.FSCapacityBytes, resource.BinarySI),
	}
}

// allocatable returns capacity minus what is reserved for the system and
// for kube components, minus the hard eviction thresholds (what the node
// keeps free before it evicts), never below zero.
func allocatable(c v1.ResourceList, kc *config.KubeletConfiguration) (v1.ResourceList, error) {
	out := c.DeepCopy()
	for _, reserved := range []map[string]string{kc.SystemReserved, kc.KubeReserved} {
		for name, v := range reserved {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return nil, fmt.Errorf("reserved %s=%q: %w", name, v, err)
			}
			subtract(out, v1.ResourceName(name), q)
		}
	}
	for resName, signal := range map[v1.ResourceName]string{v1.ResourceMemory: "memory.available", v1.ResourceEphemeralStorage: "nodefs.available"} {
		capQ := c[resName]
		t, err := hardThreshold(kc, signal, capQ.Value())
		if err != nil {
			return nil, err
		}
		subtract(out, resName, *resource.NewQuantity(t, resource.BinarySI))
	}
	return out, nil
}

func subtract(list v1.ResourceList, name v1.ResourceName, q resource.Quantity) {
	v, ok := list[name]
	if !ok {
		return
	}
	v.Sub(q)
	if v.Sign() < 0 {
		v = *resource.NewQuantity(0, v.Format)
	}
	list[name] = v
}

// mergeExtended adds the extended resources to the node's capacity and
// allocatable: berth's own (ext*), and those someone else set on the Node
// (an administrator's, by patching its status), which stay as they are,
// with allocatable equal to capacity, as the kubelet keeps them.
func mergeExtended(capList, alloc v1.ResourceList, old *v1.NodeStatus, extCap, extAlloc v1.ResourceList) {
	for name, q := range old.Capacity {
		if _, ours := extCap[name]; ours || !devices.IsExtendedResourceName(name) {
			continue
		}
		capList[name] = q.DeepCopy()
		alloc[name] = q.DeepCopy()
	}
	for name, q := range extCap {
		capList[name] = q.DeepCopy()
		a, ok := extAlloc[name]
		if !ok {
			a = q
		}
		alloc[name] = a.DeepCopy()
	}
}

// pressure holds the pressure conditions' states.
type pressure struct {
	memory, disk, pid bool
}

// computePressure compares usage with the hard eviction thresholds.
func computePressure(u Usage, info MachineInfo, kc *config.KubeletConfiguration) (pressure, error) {
	var p pressure
	mem, err := hardThreshold(kc, "memory.available", info.MemoryBytes)
	if err != nil {
		return p, err
	}
	p.memory = mem > 0 && u.MemoryAvailableBytes < mem
	for _, sig := range []struct {
		name             string
		available, total int64
	}{
		{"nodefs.available", u.FSAvailableBytes, u.FSCapacityBytes},
		{"imagefs.available", u.FSAvailableBytes, u.FSCapacityBytes},
		{"nodefs.inodesFree", u.FSInodesFree, u.FSInodes},
	} {
		t, err := hardThreshold(kc, sig.name, sig.total)
		if err != nil {
			return p, err
		}
		p.disk = p.disk || (t > 0 && sig.available < t)
	}
	pid, err := hardThreshold(kc, "pid.available", u.PIDMax)
	if err != nil {
		return p, err
	}
	p.pid = pid > 0 && u.PIDMax-u.PIDsInUse < pid
	return p, nil
}

// conditionSpec is one condition's wanted state.
type conditionSpec struct {
	kind            v1.NodeConditionType
	status          v1.ConditionStatus
	reason, message string
}

// conditions returns the node's conditions: Ready from the failed readiness
// checks, the pressure conditions from p. A condition keeps its transition
// time while its status does not change; heartbeat is now.
func conditions(old []v1.NodeCondition, notReady []string, p pressure, now time.Time) []v1.NodeCondition {
	ready := conditionSpec{v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"}
	if len(notReady) > 0 {
		ready = conditionSpec{v1.NodeReady, v1.ConditionFalse, "KubeletNotReady", strings.Join(notReady, "; ")}
	}
	specs := []conditionSpec{
		pressureSpec(v1.NodeMemoryPressure, p.memory),
		pressureSpec(v1.NodeDiskPressure, p.disk),
		pressureSpec(v1.NodePIDPressure, p.pid),
		ready,
	}
	prev := map[v1.NodeConditionType]v1.NodeCondition{}
	for _, c := range old {
		prev[c.Type] = c
	}
	t := metav1.NewTime(now)
	var out []v1.NodeCondition
	for _, s := range specs {
		c := v1.NodeCondition{Type: s.kind, Status: s.status, Reason: s.reason, Message: s.message, LastHeartbeatTime: t, LastTransitionTime: t}
		if p, ok := prev[s.kind]; ok && p.Status == s.status {
			c.LastTransitionTime = p.LastTransitionTime
		}
		out = append(out, c)
	}
	// Conditions set by others (e.g. NetworkUnavailable by a CNI) stay.
	for _, c := range old {
		if !isOurs(c.Type) {
			out = append(out, c)
		}
	}
	return out
}

func isOurs(t v1.NodeConditionType) bool {
	switch t {
	case v1.NodeReady, v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure:
		return true
	}
	return false
}

// pressureSpec returns a pressure condition with upstream kubelet's reasons,
// which dashboards and alerts match on.
func pressureSpec(kind v1.NodeConditionType, under bool) conditionSpec {
	type texts struct{ okReason, okMessage, badReason, badMessage string }
	t := map[v1.NodeConditionType]texts{
		v1.NodeMemoryPressure: {"KubeletHasSufficientMemory", "kubelet has sufficient memory available", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"},
		v1.NodeDiskPressure:   {"KubeletHasNoDiskPressure", "kubelet has no disk pressure", "KubeletHasDiskPressure", "kubelet has disk pressure"},
		v1.NodePIDPressure:    {"KubeletHasSufficientPID", "kubelet has sufficient PID available", "KubeletHasInsufficientPID", "kubelet has insufficient PID available"},
	}[kind]
	if under {
		return conditionSpec{kind, v1.ConditionTrue, t.badReason, t.badMessage}
	}
	return conditionSpec{kind, v1.ConditionFalse, t.okReason, t.okMessage}
}
