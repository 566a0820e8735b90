package podruntime

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
)

// Actions is what one sync of a pod does to the runtime.
type Actions struct {
	// KillPod stops every container and sandbox of the pod, before a new
	// sandbox is made or because the pod has finished.
	KillPod bool
	// CreateSandbox makes a new sandbox with SandboxAttempt.
	CreateSandbox  bool
	SandboxAttempt uint32
	// Finished tells that the pod has run to completion: nothing of it is
	// started again.
	Finished bool
	// InitContainersToStart are indices in spec.initContainers to start, in
	// order.
	InitContainersToStart []int
	// ContainersToStart are indices in spec.containers to start.
	ContainersToStart []int
	// EphemeralContainersToStart are indices in spec.ephemeralContainers to
	// start (once each: see ephemeral.go).
	EphemeralContainersToStart []int
	// ContainersToKill are running containers to stop, by ID.
	ContainersToKill map[string]KillReason
	// BackOff holds, per container name, how long its restart must still wait.
	BackOff map[string]time.Duration
}

// KillReason says why a running container is stopped.
type KillReason struct {
	Name    string
	Message string
}

// Empty tells whether the actions change nothing.
func (a *Actions) Empty() bool {
	return !a.KillPod && !a.CreateSandbox && len(a.InitContainersToStart) == 0 &&
		len(a.ContainersToStart) == 0 && len(a.ContainersToKill) == 0 && len(a.EphemeralContainersToStart) == 0
}

// RestartGate tells how long the restart of a container whose previous
// instance is last must still wait; 0 lets it start.
type RestartGate func(name string, last *ContainerState) time.Duration

// ComputePodActions decides, from the pod spec and what the runtime runs,
// what to do next. It is pure: the only outside state is gate, the crash
// back-off.
func ComputePodActions(pod *v1.Pod, rt *PodState, gate RestartGate) Actions {
	acts := Actions{ContainersToKill: map[string]KillReason{}, BackOff: map[string]time.Duration{}}
	if create, attempt := sandboxNeeded(pod, rt); create {
		return sandboxActions(pod, rt, attempt, acts)
	}
	p := planner{pod: pod, rt: rt, gate: gate, acts: &acts}
	if p.initContainers() {
		p.regularContainers()
	}
	p.ephemeralContainers()
	return acts
}

// sandboxNeeded tells whether the pod needs a new sandbox, and its attempt.
func sandboxNeeded(pod *v1.Pod, rt *PodState) (bool, uint32) {
	sb := rt.NewestSandbox()
	if sb == nil {
		return true, 0
	}
	ready := 0
	for _, s := range rt.Sandboxes {
		if s.Ready {
			ready++
		}
	}
	switch {
	case ready > 1, !sb.Ready:
		return true, sb.Attempt + 1
	case sb.NetworkKnown && sb.HostNetwork != pod.Spec.HostNetwork:
		return true, sb.Attempt + 1
	case !pod.Spec.HostNetwork && len(sb.IPs) == 0:
		return true, sb.Attempt + 1
	}
	return false, sb.Attempt
}

// sandboxActions are the actions of a pod whose sandbox is missing or dead:
// start over in a new sandbox, unless the pod has run to completion.
func sandboxActions(pod *v1.Pod, rt *PodState, attempt uint32, acts Actions) Actions {
	acts.KillPod = true
	if pod.Spec.RestartPolicy == v1.RestartPolicyNever && attempt != 0 && len(rt.Containers) != 0 {
		acts.Finished = true
		return acts
	}
	var toStart []int
	for i, c := range pod.Spec.Containers {
		if pod.Spec.RestartPolicy == v1.RestartPolicyOnFailure && succeeded(rt.Instances(c.Name)) {
			continue
		}
		toStart = append(toStart, i)
	}
	if len(toStart) == 0 {
		acts.Finished = true
		return acts
	}
	acts.CreateSandbox = true
	acts.SandboxAttempt = attempt
	if len(pod.Spec.InitContainers) > 0 {
		acts.InitContainersToStart = []int{0}
		return acts
	}
	acts.ContainersToStart = toStart
	return acts
}

// succeeded tells whether the newest instance exited with 0.
func succeeded(instances []*ContainerState) bool {
	return len(instances) > 0 && instances[0].Exited() && instances[0].ExitCode == 0
}

// planner walks a pod's containers in a sandbox that is up.
type planner struct {
	pod  *v1.Pod
	rt   *PodState
	gate RestartGate
	acts *Actions
}

// IsSidecar tells whether an init container is a restartable one.
func IsSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// Initialized tells whether the pod's initialization is over in its current
// sandbox: a regular container was made, or every regular init container
// succeeded and every sidecar was started.
func Initialized(pod *v1.Pod, rt *PodState) bool {
	for _, c := range pod.Spec.Containers {
		if rt.Current(c.Name) != nil {
			return true
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cur := rt.Current(c.Name)
		switch {
		case cur == nil:
			return false
		case IsSidecar(c):
			if cur.StartedAt.IsZero() && !cur.Running() {
				return false
			}
		case !cur.Exited() || cur.ExitCode != 0:
			return false
		}
	}
	return true
}

// initContainers plans the init containers and tells whether the regular
// containers may be looked at.
func (p *planner) initContainers() bool {
	done := Initialized(p.pod, p.rt)
	for i := range p.pod.Spec.InitContainers {
		c := &p.pod.Spec.InitContainers[i]
		cur := p.rt.Current(c.Name)
		if IsSidecar(c) {
			if cur != nil && cur.Running() {
				continue
			}
			p.start(i, c, cur, true)
			if !done {
				return false
			}
			continue
		}
		if done {
			continue
		}
		switch {
		case cur == nil:
			p.acts.InitContainersToStart = append(p.acts.InitContainersToStart, i)
			return false
		case cur.Running():
			return false
		case cur.Exited() && cur.ExitCode == 0:
			continue
		case p.pod.Spec.RestartPolicy == v1.RestartPolicyNever:
			p.acts.KillPod, p.acts.Finished = true, true
			return false
		default:
			p.start(i, c, cur, true)
			return false
		}
	}
	// Every regular init container succeeded and every sidecar runs.
	return true
}

// start plans the start of a container whose newest instance in the sandbox
// is cur (nil if it never ran there: a new sandbox starts its containers
// without waiting), subject to the crash back-off.
func (p *planner) start(i int, c *v1.Container, cur *ContainerState, init bool) {
	if cur != nil {
		if wait := p.gate(c.Name, cur); wait > 0 {
			p.acts.BackOff[c.Name] = wait
			return
		}
	}
	if init {
		p.acts.InitContainersToStart = append(p.acts.InitContainersToStart, i)
	} else {
		p.acts.ContainersToStart = append(p.acts.ContainersToStart, i)
	}
}

// regularContainers plans the regular containers of an initialized pod.
func (p *planner) regularContainers() {
	keep, waiting := 0, 0
	for i := range p.pod.Spec.Containers {
		c := &p.pod.Spec.Containers[i]
		cur := p.rt.Current(c.Name)
		if cur != nil && cur.Running() {
			if cur.Hash != "" && cur.Hash != ContainerHash(c) {
				p.acts.ContainersToKill[cur.ID] = KillReason{
					Name:    c.Name,
					Message: fmt.Sprintf("Container %s definition changed, will be restarted", c.Name),
				}
				p.start(i, c, nil, false)
				continue
			}
			keep++
			continue
		}
		if cur == nil || shouldRestart(p.pod.Spec.RestartPolicy, cur) {
			p.start(i, c, cur, false)
			if _, ok := p.acts.BackOff[c.Name]; ok {
				waiting++
			}
		}
	}
	if keep == 0 && waiting == 0 && len(p.acts.ContainersToStart) == 0 {
		// Every regular container is done for good: stop the sidecars too.
		p.acts.KillPod, p.acts.Finished = true, true
		p.acts.InitContainersToStart = nil
		p.acts.BackOff = map[string]time.Duration{}
	}
}

// shouldRestart tells whether a container that is not running is started
// again under the pod's restart policy.
func shouldRestart(policy v1.RestartPolicy, cur *ContainerState) bool {
	if !cur.Exited() {
		// Created but never started, or in an unknown state: try again.
		return true
	}
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return cur.ExitCode != 0
	default:
		return true
	}
}
