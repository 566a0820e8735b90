package pods

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
)

// patchEchoes is what a worker remembers of its own status patches, so
// that the informer's updates that only bring them back do not wake it,
// and its next status is computed against the newest the server holds.
// Its own lock: the manager's informer handler and the worker's publishes
// (the background one included) use it.
type patchEchoes struct {
	mu sync.Mutex
	// sent are the last two statuses patched, newest first, each as JSON
	// of a pod holding only it (see statusEcho). Two: the background
	// publish of a new pod and the worker's next one are often both sent
	// before the first comes back.
	sent [2][]byte
	// patched is the server's answer to the last status patch, and
	// patchedAt when it came, until the informer brings that patch back
	// (see withNewestStatus).
	patched   *v1.Pod
	patchedAt time.Time
}

// record remembers a status patch st the server answered with patched.
func (e *patchEchoes) record(st v1.PodStatus, patched *v1.Pod, now time.Time) {
	sent, _ := json.Marshal(v1.Pod{Status: st}) // encoded by statusPatch already
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent = [2][]byte{sent, e.sent[0]}
	e.patched, e.patchedAt = patched, now
}

// update takes the informer's update of the pod from prev to pod and
// tells whether it is the echo of one of the worker's own patches (no news
// to the worker). Once the last patch is back, the informer's copy is as
// new as its answer.
func (e *patchEchoes) update(prev, pod *v1.Pod) (echo bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.patched != nil && e.patched.ResourceVersion == pod.ResourceVersion {
		e.patched = nil
	}
	return statusEcho(prev, pod, e.sent)
}

// newest returns the answer to the last status patch while the informer
// has not brought it back and it is younger than maxAge; else nil.
func (e *patchEchoes) newest(now time.Time, maxAge time.Duration) *v1.Pod {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.patched != nil && now.Sub(e.patchedAt) < maxAge {
		return e.patched
	}
	return nil
}

// statusEcho tells whether the update of a pod from prev to pod is the
// echo of the worker's own status patch: nothing but the status changed
// (and the resource version and managed fields that come with it), to the
// one of the statuses last sent. Such an update needs no sync: the
// kubelet, too, does not sync a pod for a status-only update. Anything
// else, a status written by someone else included, wakes the worker.
func statusEcho(prev, pod *v1.Pod, sent [2][]byte) bool {
	if prev == nil || sent[0] == nil || !apiequality.Semantic.DeepEqual(prev.Spec, pod.Spec) {
		return false
	}
	a, b := prev.ObjectMeta, pod.ObjectMeta
	a.ResourceVersion, b.ResourceVersion = "", ""
	a.ManagedFields, b.ManagedFields = nil, nil
	if !apiequality.Semantic.DeepEqual(a, b) {
		return false
	}
	got, err := json.Marshal(v1.Pod{Status: pod.Status})
	return err == nil && (bytes.Equal(got, sent[0]) || bytes.Equal(got, sent[1]))
}
