package relist

import (
	"sort"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Fingerprint sums up a pod's sandboxes and containers and their states,
// in any order, as one string. The relist builds it from what it lists; a
// pod worker builds it from what its sync observed (podruntime), so that
// the two compare: the relist wakes a worker only for a change the worker
// has not seen itself.
type Fingerprint struct {
	parts []string
}

// Sandbox adds a sandbox with its state.
func (f *Fingerprint) Sandbox(id string, state runtimeapi.PodSandboxState) {
	f.parts = append(f.parts, "s:"+id+":"+state.String())
}

// Container adds a container with its state.
func (f *Fingerprint) Container(id string, state runtimeapi.ContainerState) {
	f.parts = append(f.parts, "c:"+id+":"+state.String())
}

// String is the fingerprint: the same for the same sandboxes and
// containers whatever order they were added in.
func (f *Fingerprint) String() string {
	sort.Strings(f.parts)
	return strings.Join(f.parts, ",")
}
