package devices

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/types"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/berthnode/berth/kubelet/atomicfile"
)

// assignment is the devices of one resource given to one container, with
// the plugin's Allocate answer for them.
type assignment struct {
	ids  []string
	resp *pluginapi.ContainerAllocateResponse
}

// podDevices are the assignments by pod UID, container name and resource.
type podDevices map[types.UID]map[string]map[string]*assignment

// get returns the assignment of a container's resource, nil if none.
func (pd podDevices) get(uid types.UID, container, resource string) *assignment {
	return pd[uid][container][resource]
}

// set records an assignment.
func (pd podDevices) set(uid types.UID, container, resource string, a *assignment) {
	if pd[uid] == nil {
		pd[uid] = map[string]map[string]*assignment{}
	}
	if pd[uid][container] == nil {
		pd[uid][container] = map[string]*assignment{}
	}
	pd[uid][container][resource] = a
}

// inUse returns the devices of resource assigned to any container.
func (pd podDevices) inUse(resource string) map[string]bool {
	out := map[string]bool{}
	for _, containers := range pd {
		for _, res := range containers {
			for _, id := range res[resource].idsOrNil() {
				out[id] = true
			}
		}
	}
	return out
}

func (a *assignment) idsOrNil() []string {
	if a == nil {
		return nil
	}
	return a.ids
}

// checkpointName is berth's checkpoint file in the plugin directory; the
// kubelet's (kubelet_internal_checkpoint) has another format and is left
// alone.
const checkpointName = "berth_device_checkpoint"

// checkpoint is the file's content.
type checkpoint struct {
	// Entries are the assignments.
	Entries []checkpointEntry `json:"entries"`
	// Resources are the resources registered so far, each with its
	// healthy devices then.
	Resources map[string][]string `json:"resources"`
}

// checkpointEntry is one assignment.
type checkpointEntry struct {
	PodUID    types.UID `json:"podUID"`
	Container string    `json:"container"`
	Resource  string    `json:"resource"`
	DeviceIDs []string  `json:"deviceIDs"`
	// Response is the plugin's ContainerAllocateResponse in protobuf.
	Response []byte `json:"response"`
}

// checkpointPath is where the checkpoint lives.
func (m *Manager) checkpointPath() string { return filepath.Join(m.cfg.Dir, checkpointName) }

// writeCheckpoint saves the assignments and the resources, replacing the
// file at once.
func (m *Manager) writeCheckpoint() error {
	// One writer at a time, so that a snapshot is never written over a
	// newer one.
	m.checkpointMu.Lock()
	defer m.checkpointMu.Unlock()
	m.mu.Lock()
	cp := checkpoint{Resources: map[string][]string{}}
	for name, r := range m.resources {
		ids := []string{}
		for id := range r.healthy() {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		cp.Resources[name] = ids
	}
	var err error
	for uid, containers := range m.pods {
		for cname, res := range containers {
			for rname, a := range res {
				b, merr := proto.Marshal(a.resp)
				err = errors.Join(err, merr)
				cp.Entries = append(cp.Entries, checkpointEntry{PodUID: uid, Container: cname, Resource: rname, DeviceIDs: a.ids, Response: b})
			}
		}
	}
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode allocate responses: %w", err)
	}
	sort.Slice(cp.Entries, func(i, j int) bool {
		a, b := cp.Entries[i], cp.Entries[j]
		if a.PodUID != b.PodUID {
			return a.PodUID < b.PodUID
		}
		if a.Container != b.Container {
			return a.Container < b.Container
		}
		return a.Resource < b.Resource
	})
	data, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encode device checkpoint: %w", err)
	}
	if err := atomicfile.Write(m.checkpointPath(), data, 0o600); err != nil {
		return fmt.Errorf("write device checkpoint: %w", err)
	}
	return nil
}

// loadCheckpoint reads the checkpoint; a missing file is an empty one.
func loadCheckpoint(path string) (checkpoint, error) {
	var cp checkpoint
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return cp, fmt.Errorf("read device checkpoint: %w", err)
	}
	if err := json.Unmarshal(data, &cp); err != nil {
		return cp, fmt.Errorf("device checkpoint %s is corrupt: %w", path, err)
	}
	return cp, nil
}
