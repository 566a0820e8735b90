package resize

import (
	"encoding/json"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Event reasons of resizes, the kubelet's.
const (
	EventStarted    = "ResizeStarted"
	EventCompleted  = "ResizeCompleted"
	EventDeferred   = "ResizeDeferred"
	EventInfeasible = "ResizeInfeasible"
	EventError      = "ResizeError"
)

// Conditions are a pod's resize conditions, each nil when absent.
type Conditions struct {
	Pending    *v1.PodCondition
	InProgress *v1.PodCondition
}

// Backfill takes the resize conditions from a pod's published status, as
// the kubelet does when it starts, so that a restart does not lose them.
func Backfill(st v1.PodStatus) Conditions {
	var out Conditions
	for i := range st.Conditions {
		c := st.Conditions[i]
		switch c.Type {
		case v1.PodResizePending:
			out.Pending = &c
		case v1.PodResizeInProgress:
			out.InProgress = &c
		}
	}
	return out
}

// List returns the present conditions, Pending first.
func (c *Conditions) List() []v1.PodCondition {
	var out []v1.PodCondition
	for _, p := range []*v1.PodCondition{c.Pending, c.InProgress} {
		if p != nil {
			out = append(out, *p)
		}
	}
	return out
}

// SetPending sets PodResizePending; any reason but Infeasible is Deferred.
// It tells whether the reason or generation changed, which is when the
// kubelet emits an event.
func (c *Conditions) SetPending(reason, message string, generation int64, now time.Time) bool {
	if reason != ReasonInfeasible {
		reason = ReasonDeferred
	}
	prev := c.Pending
	c.Pending = updated(v1.PodResizePending, prev, reason, message, generation, now)
	return prev == nil || prev.Reason != reason || prev.ObservedGeneration != generation
}

// ClearPending removes PodResizePending.
func (c *Conditions) ClearPending() { c.Pending = nil }

// SetInProgress sets PodResizeInProgress. An existing condition keeps its
// generation, and its reason and message unless new ones are given: to
// start over at a new generation, clear it first. It returns the
// condition's generation and whether it changed.
func (c *Conditions) SetInProgress(reason, message string, generation int64, now time.Time) (int64, bool) {
	prev := c.InProgress
	if prev != nil {
		if reason == "" && message == "" {
			reason, message = prev.Reason, prev.Message
		}
		generation = prev.ObservedGeneration
	}
	c.InProgress = updated(v1.PodResizeInProgress, prev, reason, message, generation, now)
	changed := prev == nil || prev.Reason != reason || prev.Message != message
	return generation, changed
}

// ClearInProgress removes PodResizeInProgress and returns its generation
// and whether there was one.
func (c *Conditions) ClearInProgress() (int64, bool) {
	if c.InProgress == nil {
		return 0, false
	}
	gen := c.InProgress.ObservedGeneration
	c.InProgress = nil
	return gen, true
}

// updated makes a resize condition; its transition time moves only when
// the reason changes, and it is only touched (LastProbeTime) when it
// changes, so that a resize waiting for long does not rewrite the status
// on every sync.
func updated(t v1.PodConditionType, prev *v1.PodCondition, reason, message string, generation int64, now time.Time) *v1.PodCondition {
	if prev != nil && prev.Reason == reason && prev.Message == message && prev.ObservedGeneration == generation {
		return prev
	}
	c := &v1.PodCondition{
		Type:               t,
		Status:             v1.ConditionTrue,
		LastProbeTime:      metav1.NewTime(now),
		LastTransitionTime: metav1.NewTime(now),
		ObservedGeneration: generation,
		Reason:             reason,
		Message:            message,
	}
	if prev != nil && prev.Reason == reason {
		c.LastTransitionTime = prev.LastTransitionTime
	}
	return c
}

// containerSummary and podSummary are the JSON of the kubelet's resize
// event messages.
type containerSummary struct {
	Name      string                  `json:"name"`
	Resources v1.ResourceRequirements `json:"resources,omitempty"`
}

type podSummary struct {
	InitContainers []containerSummary `json:"initContainers,omitempty"`
	Containers     []containerSummary `json:"containers,omitempty"`
	Generation     int64              `json:"generation"`
	Error          string             `json:"error,omitempty"`
}

// EventMessage words a resize event as the kubelet does: a prefix ("Pod
// resize started", "Pod resize Deferred", ...) and the resources of the
// pod's containers as JSON, with the generation and an error if any.
func EventMessage(prefix string, pod *v1.Pod, generation int64, errMsg string) string {
	s := podSummary{Generation: generation, Error: errMsg}
	for _, c := range pod.Spec.InitContainers {
		s.InitContainers = append(s.InitContainers, containerSummary{Name: c.Name, Resources: c.Resources})
	}
	for _, c := range pod.Spec.Containers {
		s.Containers = append(s.Containers, containerSummary{Name: c.Name, Resources: c.Resources})
	}
	data, err := json.Marshal(s)
	if err != nil {
		return prefix
	}
	return fmt.Sprintf("%s: %s", prefix, data)
}
