package pods

import (
	"encoding/json"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/kubelet/podstatus"
)

func TestStatusEcho(t *testing.T) {
	pending := v1.PodStatus{Phase: v1.PodPending}
	running := v1.PodStatus{Phase: v1.PodRunning, PodIP: "10.244.1.5"}
	encode := func(st v1.PodStatus) []byte {
		b, err := json.Marshal(v1.Pod{Status: st})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
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
	sent := [2][]byte{encode(running), encode(pending)}
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		sent [2][]byte
		want bool
	}{
		{"the status last sent", with(func(p *v1.Pod) { p.Status = running }), sent, true},
		{"the status sent before it", with(func(p *v1.Pod) { p.Status = pending }), sent, true},
		{"nothing sent yet", with(func(p *v1.Pod) { p.Status = running }), [2][]byte{}, false},
		{"a status someone else wrote", with(func(p *v1.Pod) { p.Status = v1.PodStatus{Phase: v1.PodFailed} }), sent, false},
		{"a label changed too", with(func(p *v1.Pod) { p.Status, p.Labels = running, map[string]string{"app": "db"} }), sent, false},
		{"being deleted", with(func(p *v1.Pod) { p.Status, p.DeletionTimestamp = running, &metav1.Time{} }), sent, false},
		{"the spec changed", with(func(p *v1.Pod) { p.Status, p.Spec.ActiveDeadlineSeconds = running, new(int64) }), sent, false},
	} {
		if got := statusEcho(prev, tc.pod, tc.sent); got != tc.want {
			t.Errorf("%s: statusEcho = %v, want %v", tc.name, got, tc.want)
		}
	}
	if statusEcho(nil, prev, sent) {
		t.Error("statusEcho of a first sight = true, want false")
	}
}

// TestSlowSandboxTwoStatusPatches: a pod whose sandbox takes longer than
// backgroundPublishDelay gets its waiting status and then its running one,
// and no third patch to correct the second (a condition's reason that the
// second, made against the status from before the first, left behind).
func TestSlowSandboxTwoStatusPatches(t *testing.T) {
	h := newHarness(t)
	gate := make(chan struct{})
	h.rt.sandboxGate = gate
	h.start()
	h.create(testPod("web", ctr("app")))
	h.waitFor("the background publish", func() bool { return h.waitingReason("web", "app") == podstatus.ReasonContainerCreating })
	close(gate)
	h.waitFor("running", func() bool { return h.running("web", "app") && h.status("web", "app").Ready })
	for range 30 {
		h.clock.Step(100 * time.Millisecond)
		time.Sleep(2 * time.Millisecond)
	}
	patches := 0
	for _, a := range h.client.Actions() {
		if a.GetVerb() == "patch" && a.GetSubresource() == "status" {
			patches++
		}
	}
	if patches != 2 {
		t.Errorf("status patches = %d, want 2 (waiting, then running)", patches)
	}
}
