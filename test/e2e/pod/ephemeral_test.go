package pod

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// ephemeralStatus returns the status of the pod's ephemeral container name,
// nil while there is none.
func ephemeralStatus(p *v1.Pod, name string) *v1.ContainerStatus {
	for i := range p.Status.EphemeralContainerStatuses {
		if p.Status.EphemeralContainerStatuses[i].Name == name {
			return &p.Status.EphemeralContainerStatuses[i]
		}
	}
	return nil
}

// addEphemeral adds ec to the pod through the ephemeralcontainers
// subresource, as `kubectl debug` and the conformance tests do.
func addEphemeral(t *testing.T, client kubernetes.Interface, ns, pod string, ec v1.EphemeralContainer) {
	t.Helper()
	p, err := client.CoreV1().Pods(ns).Get(t.Context(), pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, ec)
	if _, err := client.CoreV1().Pods(ns).UpdateEphemeralContainers(t.Context(), pod, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("add ephemeral container %s: %v", ec.Name, err)
	}
}

// TestEphemeralContainers adds ephemeral containers to a running pod: one
// that exits is reported Terminated with its exit code and never started
// again; one runs with the pod's volume and its own environment, answers
// exec and shows its log through the API. The pod's deletion stops them.
func TestEphemeralContainers(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	pod := busybox("target", "echo marker-from-target > /data/marker; exec sleep 3600")
	pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "target", time.Minute, cluster.PodReady)

	addEphemeral(t, client, ns, "target", v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon{
		Name: "oneshot", Image: images.BusyboxRef, Command: []string{"sh", "-c", "exit 3"},
	}})
	done := cluster.WaitPod(t, client, ns, "target", time.Minute, func(p *v1.Pod) bool {
		s := ephemeralStatus(p, "oneshot")
		return s != nil && s.State.Terminated != nil
	})
	first := ephemeralStatus(done, "oneshot")
	if term := first.State.Terminated; term.ExitCode != 3 || term.Reason != "Error" {
		t.Errorf("oneshot terminated %+v, want exit code 3, reason Error", term)
	}

	addEphemeral(t, client, ns, "target", v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon{
		Name: "debugger", Image: images.BusyboxRef, Stdin: true, TTY: true,
		Command:      []string{"sh", "-c", `echo "mode=$MODE"; cat /data/marker; while true; do echo polo; sleep 2; done`},
		Env:          []v1.EnvVar{{Name: "MODE", Value: "debugging"}},
		VolumeMounts: []v1.VolumeMount{{Name: "data", MountPath: "/data"}},
	}})
	running := cluster.WaitPod(t, client, ns, "target", time.Minute, func(p *v1.Pod) bool {
		s := ephemeralStatus(p, "debugger")
		return s != nil && s.State.Running != nil
	})
	if s := ephemeralStatus(running, "debugger"); s.ContainerID == "" || s.ImageID == "" || s.Image != images.BusyboxRef {
		t.Errorf("debugger status %+v: want its container ID, image and image ID", s)
	}
	// The debugger started in a later sync of the pod than the one that
	// saw oneshot exit: had berth meant to start oneshot again, it would have.
	if s := ephemeralStatus(running, "oneshot"); s.State.Terminated == nil || s.ContainerID != first.ContainerID || s.RestartCount != 0 {
		t.Errorf("oneshot started again: %+v, first %s", s, first.ContainerID)
	}
	if running.Status.Phase != v1.PodRunning || !cluster.PodReady(running) {
		t.Errorf("the debugger changed the pod: %s", cluster.Describe(running))
	}
	cluster.Poll(t, 30*time.Second, "debugger log", func() (bool, string) {
		raw, err := client.CoreV1().Pods(ns).GetLogs("target", &v1.PodLogOptions{Container: "debugger"}).DoRaw(ctx)
		log := string(raw)
		return err == nil && strings.Contains(log, "mode=debugging") && strings.Contains(log, "marker-from-target") &&
			strings.Contains(log, "polo"), fmt.Sprintf("%q %v", log, err)
	})
	if r := cluster.KubectlWithInput(t, bed, time.Minute, "", "exec", "-n", ns, "target", "-c", "debugger", "--", "echo", "marco"); r.Stdout != "marco\n" {
		t.Errorf("exec in the debugger gave %q (exit %d, stderr %q), want marco", r.Stdout, r.Code, r.Stderr)
	}

	if err := client.CoreV1().Pods(ns).Delete(ctx, "target", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.Poll(t, time.Minute, "pod deleted with its ephemeral containers", func() (bool, string) {
		_, err := client.CoreV1().Pods(ns).Get(ctx, "target", metav1.GetOptions{})
		return err != nil, fmt.Sprint(err)
	})
}

// TestKubectlDebug runs `kubectl debug -it --target` as a person would: the
// debugger shares the target container's process namespace, so the ps fed
// through its stdin shows the target's process.
func TestKubectlDebug(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	const unique = "sleep 4242"
	pod := busybox("app", "exec "+unique)
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "app", time.Minute, cluster.PodReady)

	session := cluster.StartKubectl(t, bed, 2*time.Minute,
		"debug", "-it", "-n", ns, "app", "--image="+images.BusyboxRef, "--target=main", "-c", "debugger", "--", "sh")
	session.Send(t, "ps -o pid,args\n")
	session.WaitOutput(t, time.Minute, unique)
	session.Send(t, "exit\n")
	// kubectl falls back to the container's log when attach fails: the
	// output must have come through attach.
	if r := session.Close(); r.Code != 0 || strings.Contains(r.Stderr, "couldn't attach") {
		t.Errorf("kubectl debug gave exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	p := cluster.WaitPod(t, client, ns, "app", time.Minute, func(p *v1.Pod) bool {
		s := ephemeralStatus(p, "debugger")
		return s != nil && s.State.Terminated != nil
	})
	if term := ephemeralStatus(p, "debugger").State.Terminated; term.ExitCode != 0 {
		t.Errorf("debugger terminated %+v, want exit code 0", term)
	}
}
