package podruntime

import (
	"fmt"
	"time"

	"github.com/berthnode/berth/kubelet/staticpods"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CPU and OOM constants of the kubelet's QoS policy.
const (
	minShares             = 2
	sharesPerCPU          = 1024
	minQuotaPeriod        = 1000
	guaranteedOOMScoreAdj = -997
	besteffortOOMScoreAdj = 1000
	// CriticalPriority is the priority from which a pod is node critical
	// (system-cluster-critical and up) and gets the guaranteed OOM score.
	CriticalPriority = 2000000000
	// systemNodeCritical is the priority class of node critical pods.
	systemNodeCritical = "system-node-critical"
)

// ResourceParams are the node's settings container resources depend on.
type ResourceParams struct {
	// CFSQuota enforces CPU limits with CFS quota.
	CFSQuota bool
	// QuotaPeriod is the CFS period.
	QuotaPeriod time.Duration
	// MemoryCapacity is the node's memory in bytes.
	MemoryCapacity int64
}

// ContainerResources maps a container's requests and limits to cgroup
// settings: CPU shares from the request, CFS quota from the limit, the
// memory limit, and the OOM score adjustment of the pod's QoS class.
func ContainerResources(pod *v1.Pod, c *v1.Container, p ResourceParams) *runtimeapi.LinuxContainerResources {
	out := &runtimeapi.LinuxContainerResources{}
	req := c.Resources.Requests.Cpu()
	lim := c.Resources.Limits.Cpu()
	cpuReq := req.MilliValue()
	if req.IsZero() && !lim.IsZero() {
		cpuReq = lim.MilliValue()
	}
	out.CpuShares = milliCPUToShares(cpuReq)
	if p.CFSQuota && !lim.IsZero() {
		period := p.QuotaPeriod
		if period <= 0 {
			period = 100 * time.Millisecond
		}
		out.CpuPeriod = period.Microseconds()
		out.CpuQuota = max(lim.MilliValue()*out.CpuPeriod/1000, minQuotaPeriod)
	}
	if m := c.Resources.Limits.Memory(); !m.IsZero() {
		out.MemoryLimitInBytes = m.Value()
	}
	out.OomScoreAdj = oomScoreAdj(pod, c, p.MemoryCapacity)
	return out
}

func milliCPUToShares(milli int64) int64 {
	if milli == 0 {
		return minShares
	}
	return max(milli*sharesPerCPU/1000, minShares)
}

// oomScoreAdj follows the kubelet: guaranteed and node-critical pods are
// killed last, best-effort ones first, burstable ones by the share of the
// node's memory they request.
func oomScoreAdj(pod *v1.Pod, c *v1.Container, capacity int64) int64 {
	if pod.Spec.Priority != nil && *pod.Spec.Priority >= CriticalPriority {
		return guaranteedOOMScoreAdj
	}
	if isStaticPod(pod) && pod.Spec.PriorityClassName == systemNodeCritical {
		// No API server resolved the class of a static pod to a
		// priority; the kubelet counts it as node critical all the same.
		return guaranteedOOMScoreAdj
	}
	switch QOSClass(pod) {
	case v1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case v1.PodQOSBestEffort:
		return besteffortOOMScoreAdj
	}
	if capacity <= 0 {
		return besteffortOOMScoreAdj - 1
	}
	adj := 1000 - (1000*c.Resources.Requests.Memory().Value())/capacity
	if adj < 1000+guaranteedOOMScoreAdj {
		return 1000 + guaranteedOOMScoreAdj
	}
	if adj == besteffortOOMScoreAdj {
		return adj - 1
	}
	return adj
}

// containerSecurity maps the container's security context, over the pod's,
// to CRI.
func containerSecurity(pod *v1.Pod, c *v1.Container, rootDir string) *runtimeapi.LinuxContainerSecurityContext {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &v1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &v1.SecurityContext{}
	}
	out := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions:   namespaceOptions(pod),
		SupplementalGroups: supplementalGroups(psc),
		Seccomp:            seccompProfile(rootDir, psc.SeccompProfile, sc.SeccompProfile),
	}
	if u := firstInt64(sc.RunAsUser, psc.RunAsUser); u != nil {
		out.RunAsUser = &runtimeapi.Int64Value{Value: *u}
	}
	if g := firstInt64(sc.RunAsGroup, psc.RunAsGroup); g != nil {
		out.RunAsGroup = &runtimeapi.Int64Value{Value: *g}
	}
	if sc.Privileged != nil {
		out.Privileged = *sc.Privileged
	}
	if sc.ReadOnlyRootFilesystem != nil {
		out.ReadonlyRootfs = *sc.ReadOnlyRootFilesystem
	}
	if sc.AllowPrivilegeEscalation != nil {
		out.NoNewPrivs = !*sc.AllowPrivilegeEscalation
	}
	if caps := sc.Capabilities; caps != nil {
		out.Capabilities = &runtimeapi.Capability{
			AddCapabilities:  capNames(caps.Add),
			DropCapabilities: capNames(caps.Drop),
		}
	}
	if o := sc.SELinuxOptions; o != nil {
		out.SelinuxOptions = selinux(o)
	} else if psc.SELinuxOptions != nil {
		out.SelinuxOptions = selinux(psc.SELinuxOptions)
	}
	return out
}

func firstInt64(a, b *int64) *int64 {
	if a != nil {
		return a
	}
	return b
}

func capNames(list []v1.Capability) []string {
	out := make([]string, 0, len(list))
	for _, c := range list {
		out = append(out, string(c))
	}
	return out
}

// runAsNonRoot tells whether the container must not run as root.
func runAsNonRoot(pod *v1.Pod, c *v1.Container) bool {
	if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
		return *c.SecurityContext.RunAsNonRoot
	}
	return pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.RunAsNonRoot != nil &&
		*pod.Spec.SecurityContext.RunAsNonRoot
}

// verifyNonRoot checks runAsNonRoot against the user the container will run
// as: its runAsUser, or else the image's user (an empty one is root).
func verifyNonRoot(pod *v1.Pod, c *v1.Container, img *runtimeapi.Image) error {
	if !runAsNonRoot(pod, c) {
		return nil
	}
	var psc *int64
	if pod.Spec.SecurityContext != nil {
		psc = pod.Spec.SecurityContext.RunAsUser
	}
	var csc *int64
	if c.SecurityContext != nil {
		csc = c.SecurityContext.RunAsUser
	}
	if u := firstInt64(csc, psc); u != nil {
		if *u == 0 {
			return fmt.Errorf("%w: container's runAsUser breaks non-root policy (pod: %q, container: %s)", ErrConfig, pod.Namespace+"/"+pod.Name, c.Name)
		}
		return nil
	}
	if img.GetUid() != nil {
		if img.GetUid().GetValue() == 0 {
			return fmt.Errorf("%w: container has runAsNonRoot and image will run as root (pod: %q, container: %s)", ErrConfig, pod.Namespace+"/"+pod.Name, c.Name)
		}
		return nil
	}
	if name := img.GetUsername(); name != "" {
		return fmt.Errorf("%w: container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", ErrConfig, name, pod.Namespace+"/"+pod.Name, c.Name)
	}
	return fmt.Errorf("%w: container has runAsNonRoot and image will run as root (pod: %q, container: %s)", ErrConfig, pod.Namespace+"/"+pod.Name, c.Name)
}

// isStaticPod tells whether the pod comes from a manifest file.
func isStaticPod(pod *v1.Pod) bool {
	return pod.Annotations[staticpods.AnnotationSource] == staticpods.SourceFile
}
