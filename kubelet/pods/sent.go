package pods

import (
	"bytes"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
)

// sentStatus is what a worker last patched as its pod's status. The
// worker writes it after each patch; the informer's handler reads it
// (statusEcho) and marks the patch as back (echoed). Its own lock is taken
// after Manager.mu, never before.
type sentStatus struct {
	mu sync.Mutex
	// encoded are the last two statuses patched, newest first, each as
	// JSON of a pod holding only it. Two: a new pod's background publish
	// and the worker's next one are often both sent before the first
	// comes back.
	encoded [2][]byte
	// patched is the server's answer to the last patch, and at when it
	// came, until the informer brings that patch back.
	patched *v1.Pod
	at      time.Time
}

// record notes a patch of the status encoded (encodeStatus) and the
// server's answer to it.
func (s *sentStatus) record(encoded []byte, patched *v1.Pod, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.encoded = [2][]byte{encoded, s.encoded[0]}
	s.patched, s.at = patched, now
}

// echo tells whether the update of a pod from prev to pod is the echo of
// the worker's own status patch: nothing but the status changed (and the
// resource version and managed fields that come with it), to one of the
// statuses last sent. Such an update needs no sync: the kubelet, too, does
// not sync a pod for a status-only update. Anything else, a status written
// by someone else included, wakes the worker. An update that brings the
// last patch back ends its answer's use as the newest status.
func (s *sentStatus) echo(prev, pod *v1.Pod) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.patched != nil && s.patched.ResourceVersion == pod.ResourceVersion {
		s.patched = nil
	}
	if prev == nil || s.encoded[0] == nil || !apiequality.Semantic.DeepEqual(prev.Spec, pod.Spec) {
		return false
	}
	a, b := prev.ObjectMeta, pod.ObjectMeta
	a.ResourceVersion, b.ResourceVersion = "", ""
	a.ManagedFields, b.ManagedFields = nil, nil
	if !apiequality.Semantic.DeepEqual(a, b) {
		return false
	}
	got, err := encodeStatus(pod.Status)
	return err == nil && (bytes.Equal(got, s.encoded[0]) || bytes.Equal(got, s.encoded[1]))
}

// newest returns the server's answer to the last patch while the informer
// has not brought that patch back, for at most resendAfter; else nil.
func (s *sentStatus) newest(now time.Time) *v1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.patched == nil || now.Sub(s.at) >= resendAfter {
		return nil
	}
	return s.patched
}

// withNewestStatus returns pod with the newest status the server is known
// to hold: the answer to the worker's last status patch while the informer
// has not brought that patch back, else the informer's newest copy; a
// background publish may have been sent since the sync took pod. The watch
// brings updates in order, so until the echo of a patch, its answer is the
// newest. A status computed and patched against an older one would leave
// fields the server has and the new status lacks (a condition's reason),
// and a third patch would follow to remove them.
func (w *podWorker) withNewestStatus(pod *v1.Pod) *v1.Pod {
	if w.static {
		return pod
	}
	newest := w.sent.newest(w.clock.Now())
	if newest == nil {
		newest = w.host.podOf(w)
	}
	if newest == nil || newest.UID != pod.UID || newest == pod {
		return pod
	}
	out := *pod
	out.Status = newest.Status
	return &out
}
