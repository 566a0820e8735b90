package node

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berthnode/berth/test/testbed"
)

// The tests in this file stop and start berth and containerd: they run
// last (files run in name order), after the tests that need steady nodes.

// TestBerthKilledAdoptsPods kills berth with SIGKILL while 20 pods run,
// changes the node's pods while it is down, and starts it again: the same
// containers still run (none restarted), and the statuses are current
// within 10 s.
func TestBerthKilledAdoptsPods(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ns := testNamespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0].Name
	createPods(t, client, ns, node, "steady", 20)
	before := map[string]string{}
	for _, p := range waitPods(t, client, ns, "group=steady", 20, 2*time.Minute, podReady) {
		before[p.Name] = p.Status.ContainerStatuses[0].ContainerID
	}

	if err := bed.StopProcesses(node, "kubelet", syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// While berth is down: one pod is deleted, one is created.
	if err := client.CoreV1().Pods(ns).Delete(ctx, "steady-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	createPods(t, client, ns, node, "late", 1)
	start := time.Now()
	if _, err := bed.StartBerth(node); err != nil {
		t.Fatal(err)
	}
	waitPod(t, client, ns, "late-0", 10*time.Second, podReady)
	deadline := start.Add(10 * time.Second)
	for attempt := 0; ; attempt++ {
		_, err := client.CoreV1().Pods(ns).Get(ctx, "steady-0", metav1.GetOptions{})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod deleted while berth was down still there 10s after berth started")
		}
		pause(ctx, attempt)
	}
	t.Logf("statuses current %s after berth started", time.Since(start).Round(time.Millisecond))

	after := waitPods(t, client, ns, "group=steady", 19, 10*time.Second, podReady)
	for _, p := range after {
		cs := p.Status.ContainerStatuses[0]
		if cs.ContainerID != before[p.Name] || cs.RestartCount != 0 {
			t.Errorf("pod %s: container %s (restarts %d), want the same container %s, never restarted", p.Name, cs.ContainerID, cs.RestartCount, before[p.Name])
		}
	}
}

// TestContainerdRestart stops containerd: the node goes NotReady; once
// containerd is back, the node is Ready again within 10 s and its pods are
// intact.
func TestContainerdRestart(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ns := testNamespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[1].Name
	createPods(t, client, ns, node, "survivor", 3)
	before := map[string]string{}
	for _, p := range waitPods(t, client, ns, "group=survivor", 3, time.Minute, podReady) {
		before[p.Name] = p.Status.ContainerStatuses[0].ContainerID
	}

	if err := bed.StopProcesses(node, "containerd", syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitNode(t, client, node, time.Now().Add(30*time.Second), func(n *v1.Node) bool {
		return condition(n, v1.NodeReady) == v1.ConditionFalse
	})
	if err := bed.StartContainerd(ctx, node); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitNode(t, client, node, back.Add(10*time.Second), func(n *v1.Node) bool {
		return condition(n, v1.NodeReady) == v1.ConditionTrue
	})
	t.Logf("node Ready %s after containerd answered again", time.Since(back).Round(time.Millisecond))
	for _, p := range waitPods(t, client, ns, "group=survivor", 3, 10*time.Second, podReady) {
		cs := p.Status.ContainerStatuses[0]
		if cs.ContainerID != before[p.Name] || cs.RestartCount != 0 {
			t.Errorf("pod %s: container %s (restarts %d), want %s, never restarted", p.Name, cs.ContainerID, cs.RestartCount, before[p.Name])
		}
	}
}

// TestBerthStoppedNodeNotReady stops berth: the controller-manager marks
// the node not ready once its lease expires; started again, the node is
// Ready.
func TestBerthStoppedNodeNotReady(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	node := bed.Nodes()[1].Name
	if err := bed.StopProcesses(node, "kubelet", syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// node-monitor-grace-period is 50 s by default.
	waitNode(t, client, node, stopped.Add(90*time.Second), func(n *v1.Node) bool {
		return condition(n, v1.NodeReady) == v1.ConditionUnknown
	})
	t.Logf("node %s went NotReady (Unknown) %s after berth stopped", node, time.Since(stopped).Round(time.Second))
	if _, err := bed.StartBerth(node); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	waitNode(t, client, node, started.Add(30*time.Second), func(n *v1.Node) bool {
		return condition(n, v1.NodeReady) == v1.ConditionTrue
	})
	t.Logf("node %s Ready %s after berth started", node, time.Since(started).Round(time.Second))
}

// createPods creates count busybox pods named prefix-N on node, labelled
// group=prefix, concurrently.
func createPods(t *testing.T, client kubernetes.Interface, ns, node, prefix string, count int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, count)
	for i := range count {
		wg.Go(func() {
			p := busyboxPod(fmt.Sprintf("%s-%d", prefix, i), node, v1.RestartPolicyAlways, "trap 'exit 0' TERM; while true; do sleep 1; done")
			p.Labels = map[string]string{"group": prefix}
			if _, err := client.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
