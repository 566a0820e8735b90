package resize

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berthnode/berth/kubelet/atomicfile"
)

// FileName is the name of a pod's record in its directory below the
// kubelet root (<root>/pods/<uid>/).
const FileName = "allocated-resources.json"

// Record is what the node keeps of one pod's resources.
type Record struct {
	// Allocated holds the resources admitted to the node for each
	// resizable container, by container name.
	Allocated map[string]v1.ResourceRequirements `json:"allocated"`
	// Actuated holds, by container name, the resources a running
	// container was given where they are not (yet) the allocated ones. A
	// container without an entry, or with an entry of another container
	// ID, runs with its allocated resources: it was started with them.
	Actuated map[string]Actuated `json:"actuated,omitempty"`
}

// Actuated are the resources one container instance runs with.
type Actuated struct {
	// ContainerID is the runtime's ID of the instance.
	ContainerID string `json:"containerID"`
	// Resources are what its cgroups were set to.
	Resources v1.ResourceRequirements `json:"resources"`
}

// NewRecord records pod's spec resources as allocated.
func NewRecord(pod *v1.Pod) *Record {
	return &Record{Allocated: SpecAllocation(pod)}
}

// Current returns the resources the running instance id of container name
// runs with.
func (r *Record) Current(name, id string) v1.ResourceRequirements {
	if a, ok := r.Actuated[name]; ok && a.ContainerID == id {
		return a.Resources
	}
	return r.Allocated[name]
}

// Allocate makes alloc the allocated resources. The running containers
// (name to ID) keep the resources they run with until they are actuated.
func (r *Record) Allocate(alloc map[string]v1.ResourceRequirements, running map[string]string) {
	if r.Actuated == nil {
		r.Actuated = map[string]Actuated{}
	}
	for name, id := range running {
		if _, ok := r.Allocated[name]; !ok {
			continue
		}
		if a, ok := r.Actuated[name]; !ok || a.ContainerID != id {
			old := r.Allocated[name]
			r.Actuated[name] = Actuated{ContainerID: id, Resources: *old.DeepCopy()}
		}
	}
	r.Allocated = alloc
	r.Prune(running)
}

// SetActuated records that instance id of container name now runs with res.
func (r *Record) SetActuated(name, id string, res v1.ResourceRequirements) {
	if r.Actuated == nil {
		r.Actuated = map[string]Actuated{}
	}
	r.Actuated[name] = Actuated{ContainerID: id, Resources: res}
	r.Prune(map[string]string{name: id})
}

// Prune drops the entries that say nothing any more: of instances that no
// longer run (running maps the names it knows of to the running IDs), and
// of instances that run with their allocated resources. It tells whether
// it dropped any.
func (r *Record) Prune(running map[string]string) bool {
	changed := false
	for name, a := range r.Actuated {
		id, known := running[name]
		if (known && id != a.ContainerID) || sameAmounts(a.Resources, r.Allocated[name]) {
			delete(r.Actuated, name)
			changed = true
		}
	}
	return changed
}

// Store keeps records in the pods' directories below the kubelet root.
type Store struct {
	// Root is the kubelet root directory.
	Root string
}

func (s Store) path(uid types.UID) string {
	return filepath.Join(s.Root, "pods", string(uid), FileName)
}

// Load reads the pod's record; nil when it has none.
func (s Store) Load(uid types.UID) (*Record, error) {
	data, err := os.ReadFile(s.path(uid))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read allocated resources of pod %s: %w", uid, err)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode allocated resources of pod %s (%s): %w", uid, s.path(uid), err)
	}
	return &r, nil
}

// Save writes the pod's record so that a crash leaves the old or the new
// one.
func (s Store) Save(uid types.UID, r *Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode allocated resources of pod %s: %w", uid, err)
	}
	if err := os.MkdirAll(filepath.Dir(s.path(uid)), 0o750); err != nil {
		return fmt.Errorf("save allocated resources of pod %s: %w", uid, err)
	}
	return atomicfile.Write(s.path(uid), data, 0o600)
}

// Remove deletes the pod's record.
func (s Store) Remove(uid types.UID) {
	_ = os.Remove(s.path(uid))
}

// equalRequirements compares resource requirements by value, as the API
// does ("1" and "1000m" are the same).
func equalRequirements(a, b v1.ResourceRequirements) bool {
	return apiequality.Semantic.DeepEqual(a, b)
}
