package pod

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// Upstream kubelet's words for a pod stopped at its active deadline.
const (
	deadlineReason  = "DeadlineExceeded"
	deadlineMessage = "Pod was active on the node longer than the specified deadline"
)

// failedFor tells whether a pod ended Failed with reason.
func failedFor(reason string) func(*v1.Pod) bool {
	return func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed && p.Status.Reason == reason }
}

// TestActiveDeadline checks spec.activeDeadlineSeconds as the conformance
// test "Pods should allow activeDeadlineSeconds to be updated" does: a
// running pause pod whose deadline is set to 5 s ends Failed with reason
// DeadlineExceeded; and a pod created with a 10 s deadline runs until then,
// not longer. Both get the kubelet's event and message.
func TestActiveDeadline(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0].Name
	pausePod := func(name string, deadline *int64) *v1.Pod {
		return &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1.PodSpec{
				NodeName:              node,
				ActiveDeadlineSeconds: deadline,
				Containers:            []v1.Container{{Name: "pause", Image: images.PauseRef}},
			},
		}
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pausePod("updated", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pausePod("created", ptr.To[int64](10)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "updated", time.Minute, cluster.PodReady)
	created := cluster.WaitPod(t, client, ns, "created", time.Minute, cluster.PodReady)

	p, err := client.CoreV1().Pods(ns).Get(ctx, "updated", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.ActiveDeadlineSeconds = ptr.To[int64](5)
	if _, err := client.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	updated := cluster.WaitPod(t, client, ns, "updated", time.Minute, failedFor(deadlineReason))

	ended := cluster.WaitPod(t, client, ns, "created", time.Minute, failedFor(deadlineReason))
	if ran := time.Since(created.Status.StartTime.Time); ran < 10*time.Second {
		t.Errorf("pod with a 10 s deadline ended %s after its start", ran)
	}
	for _, p := range []*v1.Pod{updated, ended} {
		if p.Status.Message != deadlineMessage {
			t.Errorf("pod %s: message %q, want %q", p.Name, p.Status.Message, deadlineMessage)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Terminated == nil || cs.Ready {
				t.Errorf("pod %s: container %s %+v ready=%v, want terminated, not ready", p.Name, cs.Name, cs.State, cs.Ready)
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodReady && c.Status != v1.ConditionFalse {
				t.Errorf("pod %s: Ready %s, want False", p.Name, c.Status)
			}
		}
		cluster.Poll(t, 30*time.Second, "DeadlineExceeded event of "+p.Name, func() (bool, string) {
			events, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
				FieldSelector: fields.OneTermEqualSelector("involvedObject.name", p.Name).String(),
			})
			if err != nil {
				return false, err.Error()
			}
			for _, e := range events.Items {
				if e.Reason == deadlineReason && e.Message == deadlineMessage && e.Source.Component == "kubelet" {
					return true, ""
				}
			}
			return false, "events: " + describeEvents(events.Items)
		})
	}
	// A failed pod is not started again.
	p, err = client.CoreV1().Pods(ns).Get(ctx, "updated", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cs := p.Status.ContainerStatuses; len(cs) != 1 || cs[0].RestartCount != 0 || cs[0].State.Running != nil {
		t.Errorf("stopped pod's container restarted: %s", cluster.Describe(p))
	}
}

func describeEvents(list []v1.Event) string {
	out := ""
	for _, e := range list {
		out += e.Reason + ": " + e.Message + "; "
	}
	return out
}

// TestTerminationMessageFromLogs checks terminationMessagePolicy
// FallbackToLogsOnError as the conformance test "Container Runtime
// blackbox test on terminated container should report termination message
// from log output if TerminationMessagePolicy FallbackToLogsOnError is set"
// does: a container that prints DONE without a newline and fails has DONE
// as its message. A second one's message is the end of its log, the last
// line unfinished; a third, that succeeds, has none.
func TestTerminationMessageFromLogs(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0].Name
	ctr := func(name, script string) v1.Container {
		return v1.Container{
			Name: name, Image: images.BusyboxRef, Command: []string{"sh", "-c", script},
			TerminationMessagePath:   "/dev/termination-log",
			TerminationMessagePolicy: v1.TerminationMessageFallbackToLogsOnError,
		}
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "messages"},
		Spec: v1.PodSpec{
			NodeName:      node,
			RestartPolicy: v1.RestartPolicyNever,
			Containers: []v1.Container{
				ctr("done", "/bin/echo -n DONE; /bin/false"),
				ctr("lines", "echo first; echo second; printf 'last, '; printf 'unfinished'; exit 3"),
				ctr("ok", "echo -n fine"),
			},
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := cluster.WaitPod(t, client, ns, "messages", time.Minute, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	want := map[string]string{"done": "DONE", "lines": "first\nsecond\nlast, unfinished", "ok": ""}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Terminated == nil {
			t.Errorf("container %s: %+v, want terminated", cs.Name, cs.State)
			continue
		}
		if got := cs.State.Terminated.Message; got != want[cs.Name] {
			t.Errorf("container %s: termination message %q, want %q", cs.Name, got, want[cs.Name])
		}
	}
}
