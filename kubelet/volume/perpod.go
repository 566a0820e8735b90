package volume

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// perPod remembers a value per pod and volume name while berth runs, until
// the pod's Teardown. It is safe for concurrent use.
type perPod[V any] struct {
	mu   sync.Mutex
	pods map[types.UID]map[string]V
}

func (p *perPod[V]) get(uid types.UID, name string) (V, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.pods[uid][name]
	return v, ok
}

func (p *perPod[V]) set(uid types.UID, name string, v V) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pods == nil {
		p.pods = make(map[types.UID]map[string]V)
	}
	if p.pods[uid] == nil {
		p.pods[uid] = make(map[string]V)
	}
	p.pods[uid][name] = v
}

func (p *perPod[V]) forget(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pods, uid)
}
