package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/berthnode/berth/test/e2e/cluster"
)

// podTracker follows a namespace's pods through a watch: when each was
// created (as the caller recorded it), first seen Ready, and which exist.
type podTracker struct {
	mu      sync.Mutex
	create  map[string]time.Time
	ready   map[string]time.Time
	present map[string]bool
	// changed wakes a waiter after any change.
	changed chan struct{}
}

func newPodTracker() *podTracker {
	t := &podTracker{changed: make(chan struct{}, 1)}
	t.reset()
	return t
}

// start runs an informer on the namespace's pods until ctx ends.
func (t *podTracker) start(ctx context.Context, client kubernetes.Interface, ns string) error {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    t.observe,
		UpdateFunc: func(_, obj any) { t.observe(obj) },
		DeleteFunc: t.deleted,
	})
	if err != nil {
		return fmt.Errorf("watch pods of %s: %w", ns, err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("watch pods of %s: cache never synced", ns)
	}
	return nil
}

func (t *podTracker) observe(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.present[pod.Name] = true
	if _, seen := t.ready[pod.Name]; !seen && cluster.PodReady(pod) && pod.DeletionTimestamp == nil {
		t.ready[pod.Name] = now
	}
	t.wake()
}

func (t *podTracker) deleted(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	_, name, _ := cache.SplitMetaNamespaceKey(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.present, name)
	t.wake()
}

// wake tells a waiter something changed; t.mu is held.
func (t *podTracker) wake() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// created records when the Create call of a pod began.
func (t *podTracker) created(name string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.create[name] = at
}

// reset forgets the pods created so far, once they are gone.
func (t *podTracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.create, t.ready = map[string]time.Time{}, map[string]time.Time{}
	if t.present == nil {
		t.present = map[string]bool{}
	}
}

// waitReady waits until n of the pods created since the last reset have
// been seen Ready.
func (t *podTracker) waitReady(ctx context.Context, n int) error {
	return t.waitFor(ctx, func() (bool, string) {
		count := 0
		for name := range t.create {
			if _, ok := t.ready[name]; ok {
				count++
			}
		}
		return count >= n, fmt.Sprintf("%d of %d pods Ready", count, n)
	})
}

// waitGone waits until the namespace holds no pod.
func (t *podTracker) waitGone(ctx context.Context) error {
	return t.waitFor(ctx, func() (bool, string) {
		return len(t.present) == 0, fmt.Sprintf("%d pods left", len(t.present))
	})
}

// waitFor waits up to readyTimeout until done, called with t.mu held,
// says so.
func (t *podTracker) waitFor(ctx context.Context, done func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		t.mu.Lock()
		ok, state := done()
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-t.changed:
		case <-ctx.Done():
			return fmt.Errorf("pods: %s: %w", state, ctx.Err())
		}
	}
}

// latencies returns each created pod's time from Create to Ready, sorted.
func (t *podTracker) latencies() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []time.Duration
	for name, c := range t.create {
		if r, ok := t.ready[name]; ok {
			out = append(out, r.Sub(c))
		}
	}
	slices.Sort(out)
	return out
}

// lastReady returns when the last created pod became Ready.
func (t *podTracker) lastReady() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var last time.Time
	for name := range t.create {
		if r := t.ready[name]; r.After(last) {
			last = r
		}
	}
	return last
}
