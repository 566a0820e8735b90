package relist

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/cri"
)

// Timing of the relist loop.
const (
	// Period is how often the pod controller relists the runtime.
	Period = time.Second
	// Threshold is how old the last relist may be while the relister
	// counts as healthy (the kubelet's PLEG threshold).
	Threshold = 3 * time.Minute
)

// Relister lists the runtime and remembers what it found between lists.
// Relist is called from one goroutine; the other methods from any.
type Relister struct {
	runtime internalapi.RuntimeService
	clock   clock.PassiveClock

	mu sync.Mutex
	// last is when the runtime was last listed successfully.
	last time.Time
	// fingerprints sum up each pod's sandboxes and containers and their
	// states.
	fingerprints map[types.UID]string
	// running counts pods with a ready sandbox.
	running int
	// containers counts the containers by state ("running", "exited",
	// "created", "unknown"), as kubelet_running_containers does.
	containers map[string]int
}

// New returns a relister of the runtime that has not listed it yet.
func New(runtime internalapi.RuntimeService, clk clock.PassiveClock) *Relister {
	return &Relister{runtime: runtime, clock: clk}
}

// Result is what one relist found.
type Result struct {
	// Listed are the pods the runtime holds, each with whether its
	// sandboxes or containers changed since the previous relist.
	Listed map[types.UID]bool
	// Gone are the pods the previous relist found and this one did not.
	Gone []types.UID
	// Prints are the listed pods' fingerprints (see Fingerprint), to
	// compare with what a pod's worker observed itself.
	Prints map[types.UID]string
	// Time is when the runtime was listed.
	Time time.Time
}

// Relist lists the runtime and tells which pods changed. On an error
// nothing is remembered: the next relist compares with the last good one.
func (r *Relister) Relist(ctx context.Context) (Result, error) {
	prints, running, containers, err := r.list(ctx)
	if err != nil {
		return Result{}, err
	}
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{Listed: make(map[types.UID]bool, len(prints)), Prints: prints, Time: now}
	for uid, fp := range prints {
		res.Listed[uid] = r.fingerprints[uid] != fp
	}
	for uid := range r.fingerprints {
		if _, ok := prints[uid]; !ok {
			res.Gone = append(res.Gone, uid)
		}
	}
	r.last, r.fingerprints, r.running, r.containers = now, prints, running, containers
	return res, nil
}

// Found tells whether the last relist found the pod with uid; listed
// whether the runtime has been listed at all.
func (r *Relister) Found(uid types.UID) (found, listed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, found = r.fingerprints[uid]
	return found, !r.last.IsZero()
}

// Healthy returns nil while the runtime was listed within Threshold.
func (r *Relister) Healthy() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last.IsZero() {
		return errors.New("runtime not listed yet")
	}
	if age := r.clock.Since(r.last); age > Threshold {
		return fmt.Errorf("last runtime relist %s ago (threshold %s)", age.Round(time.Second), Threshold)
	}
	return nil
}

// RunningPods is the number of pods with a ready sandbox at the last relist.
func (r *Relister) RunningPods() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// ContainerStates counts the containers of the last relist by state name
// (cri.ContainerStateName). The map must not be changed.
func (r *Relister) ContainerStates() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.containers
}

// list sums up the runtime's sandboxes and containers per pod, and counts
// the pods with a ready sandbox and the containers by state.
func (r *Relister) list(ctx context.Context) (map[types.UID]string, int, map[string]int, error) {
	sandboxes, err := r.runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("list sandboxes: %w", err)
	}
	containers, err := r.runtime.ListContainers(ctx, nil)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("list containers: %w", err)
	}
	states := map[string]int{}
	parts := map[types.UID][]string{}
	ready := map[types.UID]bool{}
	for _, s := range sandboxes {
		uid := types.UID(s.Labels[cri.LabelPodUID])
		if uid == "" {
			continue
		}
		parts[uid] = append(parts[uid], SandboxPart(s.Id, s.State))
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			ready[uid] = true
		}
	}
	for _, c := range containers {
		uid := types.UID(c.Labels[cri.LabelPodUID])
		if uid == "" {
			continue
		}
		states[cri.ContainerStateName(c.State)]++
		parts[uid] = append(parts[uid], ContainerPart(c.Id, c.State))
	}
	out := make(map[types.UID]string, len(parts))
	for uid, p := range parts {
		out[uid] = Fingerprint(p)
	}
	return out, len(ready), states, nil
}

// SandboxPart and ContainerPart are the parts of a pod's fingerprint, one
// per sandbox and container: its ID and state.
func SandboxPart(id string, state runtimeapi.PodSandboxState) string {
	return "s:" + id + ":" + state.String()
}

// ContainerPart is a container's part of a pod's fingerprint.
func ContainerPart(id string, state runtimeapi.ContainerState) string {
	return "c:" + id + ":" + state.String()
}

// Fingerprint sums up a pod's sandboxes and containers and their states
// from their parts, in any order: it changes when any of them does.
func Fingerprint(parts []string) string {
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
