package podstatus

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/berthnode/berth/kubelet/podruntime"
	"github.com/berthnode/berth/kubelet/prober"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Waiting reasons and terminated reasons of container statuses.
const (
	ReasonContainerCreating   = "ContainerCreating"
	ReasonPodInitializing     = "PodInitializing"
	ReasonCompleted           = "Completed"
	ReasonError               = "Error"
	ReasonContainersNotInit   = "ContainersNotInitialized"
	ReasonContainersNotReady  = "ContainersNotReady"
	ReasonPodCompleted        = "PodCompleted"
	reasonReadinessGatesFalse = "ReadinessGatesNotReady"
)

// Input is everything a pod status is made of.
type Input struct {
	Pod *v1.Pod
	RT  *podruntime.PodState
	// Waiting holds the reasons of containers that failed to start.
	Waiting map[string]podruntime.WaitingReason
	// Terminal tells that no container of the pod runs again.
	Terminal bool
	Now      time.Time
	HostIPs  []string
	// RuntimeName prefixes container IDs (containerd://...).
	RuntimeName string
	// Messages are the termination messages of exited containers, by ID.
	Messages map[string]string
	// Health is what the probes found of running containers, by ID.
	Health map[string]prober.Health
	// StartTime is the start time published before, for a pod whose
	// status from the informer does not show it yet: it never changes.
	StartTime *metav1.Time
	// Actual are the resources of running containers, by ID, where a
	// resize has not given them their allocated ones (Pod's) yet.
	Actual map[string]v1.ResourceRequirements
	// Resize are the pod's resize conditions (PodResizePending and
	// PodResizeInProgress), with their own generations.
	Resize []v1.PodCondition
}

// Build computes the pod status to publish. It keeps what others own
// (PodScheduled and foreign conditions, reason and message) and the
// transition times of conditions that did not change.
func Build(in Input) v1.PodStatus {
	pod := in.Pod
	old := pod.Status
	out := v1.PodStatus{
		Message:               old.Message,
		Reason:                old.Reason,
		NominatedNodeName:     old.NominatedNodeName,
		QOSClass:              podruntime.QOSClass(pod),
		StartTime:             old.StartTime,
		Resize:                old.Resize,
		ResourceClaimStatuses: old.ResourceClaimStatuses,
	}
	if out.StartTime == nil {
		out.StartTime = in.StartTime
	}
	if out.StartTime == nil {
		t := metav1.NewTime(in.Now)
		out.StartTime = &t
	}
	if pod.Generation > 0 {
		out.ObservedGeneration = pod.Generation
	}
	for _, ip := range in.HostIPs {
		out.HostIPs = append(out.HostIPs, v1.HostIP{IP: ip})
	}
	if len(in.HostIPs) > 0 {
		out.HostIP = in.HostIPs[0]
	}
	podIPs := podIPsOf(pod, in.RT, in.HostIPs)
	if len(podIPs) == 0 {
		podIPs = nil
		for _, ip := range old.PodIPs {
			podIPs = append(podIPs, ip.IP)
		}
	}
	for _, ip := range podIPs {
		out.PodIPs = append(out.PodIPs, v1.PodIP{IP: ip})
	}
	if len(podIPs) > 0 {
		out.PodIP = podIPs[0]
	}
	init := podruntime.Initialized(pod, in.RT) || podWasInitialized(pod, in.RT)
	out.InitContainerStatuses = containerStatuses(in, pod.Spec.InitContainers, true, init)
	out.ContainerStatuses = containerStatuses(in, pod.Spec.Containers, false, init)
	sort.Slice(out.ContainerStatuses, func(i, j int) bool {
		return out.ContainerStatuses[i].Name < out.ContainerStatuses[j].Name
	})
	out.EphemeralContainerStatuses = ephemeralStatuses(in, init)
	out.Phase = podPhase(pod, out.InitContainerStatuses, out.ContainerStatuses, in.Terminal, init)
	if in.Terminal && !IsTerminalPhase(out.Phase) && len(out.ContainerStatuses) > 0 {
		out.Phase = terminalPhaseOf(out.ContainerStatuses)
	}
	out.Conditions = conditions(in, out, init)
	return out
}

// podWasInitialized covers the pod whose containers are all gone from the
// runtime but that ran before (its API status says it was initialized).
func podWasInitialized(pod *v1.Pod, rt *podruntime.PodState) bool {
	if rt.NewestSandbox() != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodInitialized && c.Status == v1.ConditionTrue {
			return true
		}
	}
	return false
}

func terminalPhaseOf(list []v1.ContainerStatus) v1.PodPhase {
	for _, s := range list {
		if t := s.State.Terminated; t == nil || t.ExitCode != 0 {
			return v1.PodFailed
		}
	}
	return v1.PodSucceeded
}

// IsTerminalPhase tells whether a pod in phase p is done for good.
func IsTerminalPhase(p v1.PodPhase) bool { return p == v1.PodSucceeded || p == v1.PodFailed }

// podIPsOf returns the pod's IPs: the node's for a host network pod, the
// newest sandbox's otherwise.
func podIPsOf(pod *v1.Pod, rt *podruntime.PodState, hostIPs []string) []string {
	if pod.Spec.HostNetwork {
		return hostIPs
	}
	if sb := rt.NewestSandbox(); sb != nil {
		return sb.IPs
	}
	return nil
}

// containerStatuses builds the statuses of one list of containers in spec
// order.
func containerStatuses(in Input, list []v1.Container, init, podInit bool) []v1.ContainerStatus {
	if len(list) == 0 {
		return nil
	}
	defaultReason := ReasonContainerCreating
	if init || len(in.Pod.Spec.InitContainers) > 0 {
		defaultReason = ReasonPodInitializing
	}
	if !init && podInit {
		defaultReason = ReasonContainerCreating
	}
	out := make([]v1.ContainerStatus, 0, len(list))
	for i := range list {
		out = append(out, containerStatus(in, &list[i], init, defaultReason))
	}
	return out
}

func containerStatus(in Input, c *v1.Container, init bool, defaultReason string) v1.ContainerStatus {
	st := v1.ContainerStatus{Name: c.Name, Image: c.Image, Started: new(bool)}
	inst := in.RT.Instances(c.Name)
	var cur *podruntime.ContainerState
	if len(inst) > 0 {
		cur = inst[0]
		st.RestartCount = cur.RestartCount
		st.ImageID = cur.ImageRef
		st.ContainerID = in.RuntimeName + "://" + cur.ID
		st.Resources, st.AllocatedResources = statusResources(in, c, cur)
	}
	for _, prev := range inst[min(1, len(inst)):] {
		if prev.Exited() {
			st.LastTerminationState = v1.ContainerState{Terminated: terminated(in, prev)}
			break
		}
	}
	w, hasWaiting := in.Waiting[c.Name]
	switch {
	case cur != nil && cur.Running():
		st.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(cur.StartedAt)}
		*st.Started, st.Ready = prober.HealthOf(c, in.Health[cur.ID])
	case hasWaiting && !in.Terminal:
		st.State.Waiting = &v1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
		if cur != nil && cur.Exited() {
			st.LastTerminationState = v1.ContainerState{Terminated: terminated(in, cur)}
		}
	case cur != nil && cur.Exited():
		st.State.Terminated = terminated(in, cur)
		st.Ready = init && !podruntime.IsSidecar(c) && cur.ExitCode == 0
	default:
		st.State.Waiting = &v1.ContainerStateWaiting{Reason: defaultReason}
	}
	return st
}

// statusResources are a container's resources as the kubelet reports
// them: what it runs with, which is its allocated resources (c's) unless a
// resize of the running container is not done; and the allocated requests.
func statusResources(in Input, c *v1.Container, cur *podruntime.ContainerState) (*v1.ResourceRequirements, v1.ResourceList) {
	res := c.Resources.DeepCopy()
	if actual, ok := in.Actual[cur.ID]; ok && cur.Running() {
		res = actual.DeepCopy()
	}
	return res, c.Resources.Requests.DeepCopy()
}

// terminated describes an exited container; the runtime's reason wins,
// else Completed or Error by exit code.
func terminated(in Input, c *podruntime.ContainerState) *v1.ContainerStateTerminated {
	reason := c.Reason
	if reason == "" {
		reason = ReasonCompleted
		if c.ExitCode != 0 {
			reason = ReasonError
		}
	}
	msg := c.Message
	if m, ok := in.Messages[c.ID]; ok && m != "" {
		msg = m
	}
	return &v1.ContainerStateTerminated{
		ExitCode:    c.ExitCode,
		Reason:      reason,
		Message:     msg,
		StartedAt:   timeOrZero(c.StartedAt),
		FinishedAt:  timeOrZero(c.FinishedAt),
		ContainerID: in.RuntimeName + "://" + c.ID,
	}
}

func timeOrZero(t time.Time) metav1.Time {
	if t.IsZero() || t.Unix() <= 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(t)
}

// conditions computes the kubelet's pod conditions and keeps the others.
func conditions(in Input, st v1.PodStatus, init bool) []v1.PodCondition {
	pod := in.Pod
	sb := in.RT.NewestSandbox()
	sandboxUp := sb != nil && sb.Ready && (pod.Spec.HostNetwork || len(sb.IPs) > 0)
	mine := []v1.PodCondition{
		condition(v1.PodReadyToStartContainers, sandboxUp, "", ""),
		initializedCondition(pod, st, init),
	}
	ready := containersReadyCondition(pod, st)
	mine = append(mine, ready, readyCondition(pod, ready))
	owned := map[v1.PodConditionType]bool{v1.PodResizePending: true, v1.PodResizeInProgress: true}
	for _, c := range mine {
		owned[c.Type] = true
	}
	var out []v1.PodCondition
	for _, c := range pod.Status.Conditions {
		if !owned[c.Type] {
			out = append(out, c)
		}
	}
	for _, c := range mine {
		c.ObservedGeneration = st.ObservedGeneration
		c.LastTransitionTime = metav1.NewTime(in.Now)
		if prev := FindCondition(pod.Status.Conditions, c.Type); prev != nil && prev.Status == c.Status {
			c.LastTransitionTime = prev.LastTransitionTime
		}
		out = append(out, c)
	}
	return append(out, in.Resize...)
}

func condition(t v1.PodConditionType, ok bool, reason, msg string) v1.PodCondition {
	c := v1.PodCondition{Type: t, Status: v1.ConditionFalse, Reason: reason, Message: msg}
	if ok {
		c.Status, c.Reason, c.Message = v1.ConditionTrue, "", ""
	}
	return c
}

// FindCondition returns the condition of type t in list, or nil.
func FindCondition(list []v1.PodCondition, t v1.PodConditionType) *v1.PodCondition {
	for i := range list {
		if list[i].Type == t {
			return &list[i]
		}
	}
	return nil
}

func initializedCondition(pod *v1.Pod, st v1.PodStatus, init bool) v1.PodCondition {
	if init || len(pod.Spec.InitContainers) == 0 {
		return condition(v1.PodInitialized, true, "", "")
	}
	var pending []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		s, _ := StatusByName(st.InitContainerStatuses, c.Name)
		done := s.State.Terminated != nil && s.State.Terminated.ExitCode == 0
		if podruntime.IsSidecar(c) {
			done = s.Started != nil && *s.Started
		}
		if !done {
			pending = append(pending, c.Name)
		}
	}
	if len(pending) == 0 {
		return condition(v1.PodInitialized, true, "", "")
	}
	if IsTerminalPhase(st.Phase) && st.Phase == v1.PodSucceeded {
		return condition(v1.PodInitialized, false, ReasonPodCompleted, "")
	}
	return condition(v1.PodInitialized, false, ReasonContainersNotInit,
		fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(pending, " ")))
}

func containersReadyCondition(pod *v1.Pod, st v1.PodStatus) v1.PodCondition {
	if st.Phase == v1.PodSucceeded {
		return condition(v1.ContainersReady, false, ReasonPodCompleted, "")
	}
	var unready []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if s, _ := StatusByName(st.InitContainerStatuses, c.Name); podruntime.IsSidecar(c) && !s.Ready {
			unready = append(unready, c.Name)
		}
	}
	for _, c := range pod.Spec.Containers {
		if s, _ := StatusByName(st.ContainerStatuses, c.Name); !s.Ready {
			unready = append(unready, c.Name)
		}
	}
	if len(unready) == 0 {
		return condition(v1.ContainersReady, true, "", "")
	}
	return condition(v1.ContainersReady, false, ReasonContainersNotReady,
		fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " ")))
}

func readyCondition(pod *v1.Pod, containersReady v1.PodCondition) v1.PodCondition {
	if containersReady.Status != v1.ConditionTrue {
		return condition(v1.PodReady, false, containersReady.Reason, containersReady.Message)
	}
	var missing []string
	for _, g := range pod.Spec.ReadinessGates {
		c := FindCondition(pod.Status.Conditions, g.ConditionType)
		if c == nil || c.Status != v1.ConditionTrue {
			missing = append(missing, string(g.ConditionType))
		}
	}
	if len(missing) > 0 {
		return condition(v1.PodReady, false, reasonReadinessGatesFalse,
			fmt.Sprintf("the status of pod readiness gate(s) %q is not \"True\"", missing))
	}
	return condition(v1.PodReady, true, "", "")
}

// ephemeralStatuses are the statuses of the pod's ephemeral containers,
// sorted by name as the kubelet's are. They never count as started or ready:
// no probe runs on them, and they take no part in the pod's readiness.
func ephemeralStatuses(in Input, podInit bool) []v1.ContainerStatus {
	list := make([]v1.Container, 0, len(in.Pod.Spec.EphemeralContainers))
	for i := range in.Pod.Spec.EphemeralContainers {
		list = append(list, *podruntime.EphemeralSpec(&in.Pod.Spec.EphemeralContainers[i]))
	}
	out := containerStatuses(in, list, false, podInit)
	for i := range out {
		out[i].Started, out[i].Ready = nil, false
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
