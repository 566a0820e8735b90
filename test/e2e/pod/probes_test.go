package pod

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// TestReadinessFlip turns the echo server's health endpoint off and on:
// the readiness probe takes the pod out of the Service's EndpointSlice and
// puts it back.
func TestReadinessFlip(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0].Name
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Labels: map[string]string{"app": "echo"}},
		Spec: v1.PodSpec{
			NodeName: node,
			Containers: []v1.Container{{
				Name: "echo", Image: images.EchoRef,
				Ports: []v1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &v1.Probe{
					ProbeHandler:  v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
					PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1,
				},
			}},
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec:       v1.ServiceSpec{Selector: map[string]string{"app": "echo"}, Ports: []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := cluster.WaitPod(t, client, ns, "echo", time.Minute, cluster.PodReady)
	cluster.WaitEndpoints(t, client, ns, "echo", 1)
	base := "http://" + running.Status.PodIP + ":8080"
	run := func(name, path string) {
		cluster.ClientPod{Name: name, Node: node, Command: []string{"/echo", "get", base + path}}.Run(t, bed, client, ns)
	}
	run("sick", "/sethealth?ok=false")
	cluster.WaitPod(t, client, ns, "echo", 30*time.Second, func(p *v1.Pod) bool { return !cluster.PodReady(p) && p.Status.Phase == v1.PodRunning })
	cluster.WaitEndpoints(t, client, ns, "echo", 0)
	run("well", "/sethealth?ok=true")
	cluster.WaitPod(t, client, ns, "echo", 30*time.Second, cluster.PodReady)
	cluster.WaitEndpoints(t, client, ns, "echo", 1)
	if p, _ := client.CoreV1().Pods(ns).Get(ctx, "echo", metav1.GetOptions{}); p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("a readiness failure restarted the container")
	}
}

// TestLivenessRestarts checks that a failing liveness probe restarts the
// container, with Unhealthy and Killing events.
func TestLivenessRestarts(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	pod := busybox("sickly", "touch /tmp/alive; sleep 4; rm /tmp/alive; sleep 3600")
	pod.Spec.Containers[0].LivenessProbe = &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/alive"}}},
		PeriodSeconds: 1, FailureThreshold: 2,
	}
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "sickly", time.Minute, func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	waitEvent(t, ns, "sickly", "Unhealthy", "Liveness probe failed")
	waitEvent(t, ns, "sickly", "Killing", "liveness")
}

// TestStartupProbeHoldsLiveness checks that a startup probe that succeeds
// only after 20 s keeps a failing liveness probe from restarting the
// container meanwhile, and that the container counts as started only then.
func TestStartupProbeHoldsLiveness(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	pod := busybox("slow", "sleep 20; touch /tmp/started; sleep 3600")
	c := &pod.Spec.Containers[0]
	c.StartupProbe = &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/started"}}},
		PeriodSeconds: 1, FailureThreshold: 60,
	}
	// Would fail from the start: only the startup probe holds it back.
	c.LivenessProbe = &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/started"}}},
		PeriodSeconds: 1, FailureThreshold: 1,
	}
	created := time.Now()
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := cluster.WaitPod(t, client, ns, "slow", time.Minute, func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && ptr.Deref(p.Status.ContainerStatuses[0].Started, false)
	})
	if took := time.Since(created); took < 19*time.Second {
		t.Errorf("container counted as started after %s, before its startup probe could succeed (20 s)", took.Round(time.Second))
	}
	if n := p.Status.ContainerStatuses[0].RestartCount; n != 0 {
		t.Errorf("restarted %d times while the startup probe held liveness", n)
	}
}

// TestExecProbeTimeout checks that an exec probe that hangs past its
// timeout counts as a failure: the pod never becomes ready.
func TestExecProbeTimeout(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	pod := busybox("hung", "sleep 3600")
	pod.Spec.Containers[0].ReadinessProbe = &v1.Probe{
		ProbeHandler:   v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"sleep", "30"}}},
		TimeoutSeconds: 1, PeriodSeconds: 2, FailureThreshold: 1,
	}
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "hung", time.Minute, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	waitEvent(t, ns, "hung", "Unhealthy", "Readiness probe")
	if p, _ := client.CoreV1().Pods(ns).Get(t.Context(), "hung", metav1.GetOptions{}); cluster.PodReady(p) {
		t.Error("pod Ready although its exec probe never finishes within its timeout")
	}
}

// TestPreStopBeforeSIGTERM checks that the preStop hook runs, and ends,
// before the container gets SIGTERM: the container records the order in a
// hostPath file the test reads.
func TestPreStopBeforeSIGTERM(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	dir := "/run/berth/prestop-" + ns
	pod := busybox("hooked", `trap 'if [ -f /out/prestop ]; then echo sigterm-after-prestop >> /out/order; else echo sigterm-first >> /out/order; fi; exit 0' TERM
while true; do sleep 1; done`)
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
	pod.Spec.Volumes = []v1.Volume{{Name: "out", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: dir, Type: ptr.To(v1.HostPathDirectoryOrCreate)}}}}
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = []v1.VolumeMount{{Name: "out", MountPath: "/out"}}
	c.Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "echo prestop >> /out/order; sleep 2; touch /out/prestop"}}}}
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "hooked", time.Minute, cluster.PodReady)
	if err := client.CoreV1().Pods(ns).Delete(t.Context(), "hooked", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	order := mustHostPath(t, node, dir+"/order")
	cluster.Poll(t, 30*time.Second, "the container's record of preStop and SIGTERM", func() (bool, string) {
		data, err := os.ReadFile(order)
		return err == nil && strings.Count(string(data), "\n") >= 2, fmt.Sprintf("%q %v", data, err)
	})
	data, _ := os.ReadFile(order)
	if got := string(data); got != "prestop\nsigterm-after-prestop\n" {
		t.Errorf("order %q, want preStop, then SIGTERM after it finished", got)
	}
}

// busybox returns a pod running script in busybox on the first node.
func busybox(name, script string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			NodeName:                      bed.Nodes()[0].Name,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []v1.Container{{Name: "main", Image: images.BusyboxRef, Command: []string{"sh", "-c", script}}},
		},
	}
}

// waitEvent waits for an Event with reason about pod whose message holds
// text.
func waitEvent(t *testing.T, ns, pod, reason, text string) {
	t.Helper()
	client := cluster.AdminClient(t, bed)
	cluster.Poll(t, time.Minute, fmt.Sprintf("%s event on %s", reason, pod), func() (bool, string) {
		list, err := client.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod + ",reason=" + reason})
		if err != nil {
			return false, err.Error()
		}
		var msgs []string
		for _, e := range list.Items {
			if strings.Contains(e.Message, text) {
				return true, ""
			}
			msgs = append(msgs, e.Message)
		}
		return false, strings.Join(msgs, "; ")
	})
}
