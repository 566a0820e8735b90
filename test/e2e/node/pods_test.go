package node

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// TestDeploymentAcrossNodes runs 3 echo replicas on the 2 nodes: all Running
// and Ready, each pod IP from its node's podCIDR, and a pod on one node
// reaches a pod on the other by pod IP.
func TestDeploymentAcrossNodes(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ns := testNamespace(t, client)
	ctx := t.Context()
	labels := map[string]string{"app": "echo"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{
					Containers: []v1.Container{cluster.EchoContainer()},
					// One replica per node at least: the test needs pods on both.
					TopologySpreadConstraints: []v1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: v1.LabelHostname, WhenUnsatisfiable: v1.DoNotSchedule,
						LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
					}},
				},
			},
		},
	}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(t, client, ns, "app=echo", 3, 2*time.Minute, podReady)
	byNode := map[string]v1.Pod{}
	for _, p := range pods {
		node, err := client.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cidr, err := netip.ParsePrefix(node.Spec.PodCIDR)
		if err != nil {
			t.Fatalf("node %s podCIDR %q: %v", node.Name, node.Spec.PodCIDR, err)
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !cidr.Contains(ip) {
			t.Errorf("pod %s on %s has IP %q, not in the node's podCIDR %s", p.Name, node.Name, p.Status.PodIP, cidr)
		}
		if p.Status.HostIP == "" || p.Status.StartTime == nil || p.Status.QOSClass == "" {
			t.Errorf("pod %s status incomplete: hostIP %q startTime %v qosClass %q", p.Name, p.Status.HostIP, p.Status.StartTime, p.Status.QOSClass)
		}
		byNode[p.Spec.NodeName] = p
	}
	if len(byNode) != 2 {
		t.Fatalf("pods on nodes %v, want both nodes", keys(byNode))
	}
	// A pod on each node fetches from the echo pod on the other node.
	nodes := bed.Nodes()
	for i, from := range nodes {
		target := byNode[nodes[1-i].Name]
		out := runClientPod(t, client, ns, from.Name, []string{"/echo", "get", "http://" + target.Status.PodIP + ":8080/", "--count", "3"})
		if strings.Count(out, target.Name+" ") != 3 {
			t.Errorf("pod on %s fetching from %s (%s) got:\n%s\nwant 3 answers naming %s", from.Name, target.Name, target.Status.PodIP, out, target.Name)
		}
	}
}

// TestCrashLoopBackOff checks that a container that exits 1 is restarted
// with backoff, and that the status says CrashLoopBackOff.
func TestCrashLoopBackOff(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ns := testNamespace(t, client)
	pod := busyboxPod("crasher", bed.Nodes()[0].Name, v1.RestartPolicyAlways, "echo dying; exit 1")
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sawBackOff := false
	waitPod(t, client, ns, "crasher", 2*time.Minute, func(p *v1.Pod) bool {
		if len(p.Status.ContainerStatuses) == 0 {
			return false
		}
		cs := p.Status.ContainerStatuses[0]
		if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
			sawBackOff = true
		}
		last := cs.LastTerminationState.Terminated
		return sawBackOff && cs.RestartCount >= 2 && last != nil && last.ExitCode == 1
	})
}

// TestRestartPolicyNever checks that a pod that must not restart ends
// Failed with its container's exit code.
func TestRestartPolicyNever(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ns := testNamespace(t, client)
	pod := busyboxPod("once", bed.Nodes()[1].Name, v1.RestartPolicyNever, "exit 3")
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, client, ns, "once", time.Minute, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	cs := p.Status.ContainerStatuses
	if len(cs) != 1 || cs[0].State.Terminated == nil || cs[0].State.Terminated.ExitCode != 3 || cs[0].RestartCount != 0 {
		t.Errorf("container statuses %+v, want one terminated with exit code 3 and no restart", cs)
	}
}

// TestGracefulDelete checks that deleting a pod stops its container within
// the grace period and removes the pod object.
func TestGracefulDelete(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ns := testNamespace(t, client)
	ctx := t.Context()
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "graceful"},
		Spec: v1.PodSpec{
			NodeName:                      bed.Nodes()[0].Name,
			Containers:                    []v1.Container{cluster.EchoContainer()},
			TerminationGracePeriodSeconds: ptr.To[int64](20),
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := waitPod(t, client, ns, "graceful", time.Minute, podReady)
	start := time.Now()
	if err := client.CoreV1().Pods(ns).Delete(ctx, "graceful", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The echo server exits on SIGTERM: the pod goes long before 20 s.
	deadline := start.Add(20 * time.Second)
	for attempt := 0; ; attempt++ {
		_, err := client.CoreV1().Pods(ns).Get(ctx, "graceful", metav1.GetOptions{})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod still there %s after deletion", time.Since(start))
		}
		pause(ctx, attempt)
	}
	t.Logf("pod deleted in %s", time.Since(start).Round(time.Millisecond))
	// Its cgroup goes too, in every hierarchy, as with kubelet.
	podCgroup := filepath.Join(bed.Nodes()[0].CgroupParent, "kubepods", "besteffort", "pod"+string(ready.UID))
	cluster.Poll(t, 10*time.Second, "pod cgroup "+podCgroup+" removed", func() (bool, string) {
		left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", podCgroup))
		return len(left) == 0, fmt.Sprint(left)
	})
}

func busyboxPod(name, node string, restart v1.RestartPolicy, script string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			NodeName:                      node,
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []v1.Container{{Name: "main", Image: images.BusyboxRef, Command: []string{"sh", "-c", script}}},
		},
	}
}

// runClientPod runs a one-shot echo client pod on node and returns its log.
func runClientPod(t *testing.T, client kubernetes.Interface, ns, node string, command []string) string {
	t.Helper()
	return cluster.ClientPod{Name: "client-" + node, Node: node, Command: command}.Run(t, bed, client, ns)
}

// testNamespace creates a namespace for the test, deleted after it.
func testNamespace(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	return cluster.Namespace(t, client)
}

func podReady(p *v1.Pod) bool { return cluster.PodReady(p) }

// waitPod polls a pod until ok accepts it.
func waitPod(t *testing.T, client kubernetes.Interface, ns, name string, timeout time.Duration, ok func(*v1.Pod) bool) *v1.Pod {
	t.Helper()
	return cluster.WaitPod(t, client, ns, name, timeout, ok)
}

// waitPods polls until count pods match selector and all satisfy ok.
func waitPods(t *testing.T, client kubernetes.Interface, ns, selector string, count int, timeout time.Duration, ok func(*v1.Pod) bool) []v1.Pod {
	t.Helper()
	return cluster.WaitPods(t, client, ns, selector, count, timeout, ok)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestPodEvents checks the Events of a pod's life: Pulled (the image is
// present), Created, Started, then Killing when it is deleted.
func TestPodEvents(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ns := testNamespace(t, client)
	p := busyboxPod("eventful", bed.Nodes()[1].Name, v1.RestartPolicyAlways, "trap 'exit 0' TERM; while true; do sleep 1; done")
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, client, ns, "eventful", time.Minute, podReady)
	for _, reason := range []string{"Pulled", "Created", "Started"} {
		waitEvent(t, client, ns, "eventful", reason)
	}
	if err := client.CoreV1().Pods(ns).Delete(t.Context(), "eventful", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, client, ns, "eventful", "Killing")
}
