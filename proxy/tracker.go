package proxy

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// changeTracker keeps what the informers delivered and which services
// changed since the last snapshot. Its event handlers only record; the
// sync loop takes snapshots.
type changeTracker struct {
	nodeName string
	// onChange is called (outside the lock) after every recorded change; it
	// must not block.
	onChange func()

	mu       sync.Mutex
	services map[types.NamespacedName]*v1.Service
	// slices are each service's EndpointSlices (most have one: a slice,
	// not a map, per service).
	slices map[types.NamespacedName][]*discovery.EndpointSlice
	// merged caches MergeSlices per service; stale marks entries to redo.
	merged map[types.NamespacedName]*ServiceEndpoints
	stale  map[types.NamespacedName]bool
	node   *v1.Node
	// changed are the services changed since the last snapshot, with the
	// time the change was triggered: the EndpointSlice's
	// last-change-trigger-time, zero when unknown.
	changed map[types.NamespacedName]time.Time
	// nodeChanged tells whether a node change matters to Compute.
	nodeChanged bool
}

// changeSet is what changed between two snapshots.
type changeSet struct {
	// Services are the services whose Service or EndpointSlices changed,
	// with when the change was triggered (zero when unknown).
	Services map[types.NamespacedName]time.Time
	// Node tells whether this node's topology labels changed.
	Node bool
}

func newChangeTracker(nodeName string, onChange func()) *changeTracker {
	return &changeTracker{
		nodeName: nodeName,
		onChange: onChange,
		services: map[types.NamespacedName]*v1.Service{},
		slices:   map[types.NamespacedName][]*discovery.EndpointSlice{},
		merged:   map[types.NamespacedName]*ServiceEndpoints{},
		stale:    map[types.NamespacedName]bool{},
		changed:  map[types.NamespacedName]time.Time{},
	}
}

// register adds the tracker's handlers to the informers and returns what
// tells that each has delivered its initial list.
func (t *changeTracker) register(services, slices, nodes cache.SharedInformer) ([]cache.InformerSynced, error) {
	var synced []cache.InformerSynced
	for _, h := range []struct {
		name     string
		informer cache.SharedInformer
		handler  cache.ResourceEventHandler
	}{
		{"services", services, handlerFor(t.setService)},
		{"endpointslices", slices, handlerFor(t.setSlice)},
		{"nodes", nodes, handlerFor(t.setNode)},
	} {
		reg, err := h.informer.AddEventHandler(h.handler)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", h.name, err)
		}
		synced = append(synced, reg.HasSynced)
	}
	return synced, nil
}

// handlerFor adapts set(old, new) (new nil on deletion) to an informer
// handler, unwrapping tombstones and dropping objects of other types.
func handlerFor[T any](set func(old, cur *T)) cache.ResourceEventHandler {
	as := func(obj any) *T {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		v, _ := obj.(*T)
		return v
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if cur := as(obj); cur != nil {
				set(nil, cur)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			if cur := as(newObj); cur != nil {
				set(as(oldObj), cur)
			}
		},
		DeleteFunc: func(obj any) {
			if old := as(obj); old != nil {
				set(old, nil)
			}
		},
	}
}

// unchanged tells an informer resync (same object again) from a change.
func unchanged(oldRV, curRV string) bool { return oldRV != "" && oldRV == curRV }

func (t *changeTracker) setService(old, cur *v1.Service) {
	if old != nil && cur != nil && unchanged(old.ResourceVersion, cur.ResourceVersion) {
		return
	}
	obj := cur
	if obj == nil {
		obj = old
	}
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
	t.mu.Lock()
	if cur == nil {
		delete(t.services, key)
	} else {
		t.services[key] = cur
	}
	t.markLocked(key, time.Time{})
	t.mu.Unlock()
	t.onChange()
}

func (t *changeTracker) setSlice(old, cur *discovery.EndpointSlice) {
	if old != nil && cur != nil && unchanged(old.ResourceVersion, cur.ResourceVersion) {
		return
	}
	obj := cur
	if obj == nil {
		obj = old
	}
	svcName := obj.Labels[discovery.LabelServiceName]
	if svcName == "" {
		return // not a service's slice
	}
	key := types.NamespacedName{Namespace: obj.Namespace, Name: svcName}
	t.mu.Lock()
	list := t.slices[key]
	i := slices.IndexFunc(list, func(s *discovery.EndpointSlice) bool { return s.Name == obj.Name })
	switch {
	case cur == nil && i >= 0:
		list = slices.Delete(list, i, i+1)
	case cur != nil && i >= 0:
		list[i] = cur
	case cur != nil:
		list = append(list, cur)
	}
	if len(list) == 0 {
		delete(t.slices, key)
	} else {
		t.slices[key] = list
	}
	t.stale[key] = true
	var trigger time.Time
	if cur != nil {
		trigger, _ = time.Parse(time.RFC3339Nano, cur.Annotations[v1.EndpointsLastChangeTriggerTime])
	}
	t.markLocked(key, trigger)
	t.mu.Unlock()
	t.onChange()
}

func (t *changeTracker) setNode(old, cur *v1.Node) {
	obj := cur
	if obj == nil {
		obj = old
	}
	if obj.Name != t.nodeName {
		return
	}
	t.mu.Lock()
	prevZone := ""
	if t.node != nil {
		prevZone = t.node.Labels[v1.LabelTopologyZone]
	}
	t.node = cur
	curZone := ""
	if cur != nil {
		curZone = cur.Labels[v1.LabelTopologyZone]
	}
	// Only the zone matters to Compute; the node's status changes often
	// and must not cause syncs.
	changed := curZone != prevZone
	t.nodeChanged = t.nodeChanged || changed
	t.mu.Unlock()
	if changed {
		t.onChange()
	}
}

// markLocked records a change of key. trigger is when the change was
// triggered (zero: unknown); the earliest known one wins, as the latency is
// measured from the first unapplied change.
func (t *changeTracker) markLocked(key types.NamespacedName, trigger time.Time) {
	if prev, ok := t.changed[key]; ok && (trigger.IsZero() || (!prev.IsZero() && prev.Before(trigger))) {
		return
	}
	t.changed[key] = trigger
}

// currentNode returns the last Node object seen (nil if none).
func (t *changeTracker) currentNode() *v1.Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.node
}

// snapshot returns an immutable view of everything and what changed since
// the previous snapshot.
func (t *changeTracker) snapshot() (*Snapshot, changeSet) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key := range t.stale {
		if list := t.slices[key]; len(list) > 0 {
			t.merged[key] = MergeSlices(key, list)
		} else {
			delete(t.merged, key)
		}
	}
	clear(t.stale)
	snap := &Snapshot{
		Services:  maps.Clone(t.services),
		Endpoints: maps.Clone(t.merged),
		Node:      t.node,
	}
	ch := changeSet{Services: t.changed, Node: t.nodeChanged}
	t.changed = map[types.NamespacedName]time.Time{}
	t.nodeChanged = false
	return snap, ch
}
