package pods

import (
	"encoding/json"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStatusEcho(t *testing.T) {
	pending := v1.PodStatus{Phase: v1.PodPending}
	running := v1.PodStatus{Phase: v1.PodRunning, PodIP: "10.244.1.5"}
	prev := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", ResourceVersion: "1", Labels: map[string]string{"app": "web"}},
		Spec:       v1.PodSpec{NodeName: "node1"},
		Status:     pending,
	}
	with := func(change func(p *v1.Pod)) *v1.Pod {
		p := prev.DeepCopy()
		p.ResourceVersion = "2"
		p.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "berth", Subresource: "status"}}
		change(p)
		return p
	}
	var sent sentStatus
	now := time.Now()
	for _, st := range []v1.PodStatus{pending, running} {
		encoded, err := encodeStatus(st)
		if err != nil {
			t.Fatal(err)
		}
		sent.record(encoded, nil, now)
	}
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		sent *sentStatus
		want bool
	}{
		{"the status last sent", with(func(p *v1.Pod) { p.Status = running }), &sent, true},
		{"the status sent before it", with(func(p *v1.Pod) { p.Status = pending }), &sent, true},
		{"nothing sent yet", with(func(p *v1.Pod) { p.Status = running }), &sentStatus{}, false},
		{"a status someone else wrote", with(func(p *v1.Pod) { p.Status = v1.PodStatus{Phase: v1.PodFailed} }), &sent, false},
		{"a label changed too", with(func(p *v1.Pod) { p.Status, p.Labels = running, map[string]string{"app": "db"} }), &sent, false},
		{"being deleted", with(func(p *v1.Pod) { p.Status, p.DeletionTimestamp = running, &metav1.Time{} }), &sent, false},
		{"the spec changed", with(func(p *v1.Pod) { p.Status, p.Spec.ActiveDeadlineSeconds = running, new(int64) }), &sent, false},
	} {
		if got := tc.sent.echo(prev, tc.pod); got != tc.want {
			t.Errorf("%s: echo = %v, want %v", tc.name, got, tc.want)
		}
	}
	if sent.echo(nil, prev) {
		t.Error("echo of a first sight = true, want false")
	}
}

// TestSentStatusNewest: the answer to the last patch is the newest status
// until the informer brings it back, or resendAfter passed.
func TestSentStatusNewest(t *testing.T) {
	now := time.Now()
	answer := &v1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "7"}}
	var s sentStatus
	encoded, err := encodeStatus(v1.PodStatus{Phase: v1.PodRunning})
	if err != nil {
		t.Fatal(err)
	}
	s.record(encoded, answer, now)
	if got := s.newest(now.Add(time.Second)); got != answer {
		t.Errorf("newest before the echo = %v, want the answer", got)
	}
	if got := s.newest(now.Add(resendAfter)); got != nil {
		t.Errorf("newest after %v = %v, want nil", resendAfter, got)
	}
	s.echo(nil, &v1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "7"}})
	if got := s.newest(now.Add(time.Second)); got != nil {
		t.Errorf("newest after the echo = %v, want nil", got)
	}
	if b, _ := json.Marshal(v1.Pod{Status: v1.PodStatus{Phase: v1.PodRunning}}); string(b) != string(s.encoded[0]) {
		t.Errorf("encoded = %s, want %s", s.encoded[0], b)
	}
}

// TestSlowSandboxTwoStatusPatches: a pod whose sandbox takes longer than
// backgroundPublishDelay gets its waiting status and then its running one,
// and no third patch to correct the second (a condition's reason that the
// second, made against the status from before the first, left behind).
func TestSlowSandboxTwoStatusPatches(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	gate := make(chan struct{})
	h.rt.mu.Lock()
	h.rt.sandboxGate = gate
	h.rt.mu.Unlock()
	h.start()
	h.create(testPod("slow", ctr("app")))
	h.waitFor("ContainerCreating", func() bool { return h.waitingReason("slow", "app") == "ContainerCreating" })
	close(gate)
	h.waitFor("app ready", func() bool { return h.running("slow", "app") && h.status("slow", "app").Ready })
	for range 30 {
		h.clock.Step(100 * time.Millisecond)
		time.Sleep(2 * time.Millisecond)
	}
	if got := h.statusPatches("slow"); len(got) != 2 {
		t.Errorf("status patches = %d, want 2 (waiting, then running): %q", len(got), got)
	}
}
