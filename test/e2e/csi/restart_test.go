package csi

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// This file's tests kill berth: they run last (files run in name order).

// TestBerthKilledWhileMounted kills berth with SIGKILL while a pod uses a
// CSI volume and starts it again; the pod keeps running, and its deletion
// then unpublishes and unstages the volume from what is on disk, leaving no
// mount behind.
func TestBerthKilledWhileMounted(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	ensureCSIDriver(t, client, plain)
	_, claim := staticClaim(t, client, ns, plain, "3")
	before := len(plain.calls(t, node))
	pod := createPod(t, client, ns, writerPod("survivor", node, claim))
	cluster.WaitPod(t, client, ns, "survivor", 2*time.Minute, cluster.PodReady)
	plain.waitCalls(t, node, before, "3", "NodeStageVolume", "NodePublishVolume")

	if err := bed.StopProcesses(node, "kubelet", syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	restarted := len(plain.calls(t, node))
	if _, err := bed.StartBerth(node); err != nil {
		t.Fatal(err)
	}
	// The restarted berth publishes again (NodePublishVolume is idempotent)
	// once the driver has registered with it.
	plain.waitCalls(t, node, restarted, "3", "NodeStageVolume", "NodePublishVolume")
	cluster.WaitPod(t, client, ns, "survivor", time.Minute, cluster.PodReady)

	deletePod(t, client, ns, "survivor", time.Minute)
	plain.waitCalls(t, node, restarted, "3", "NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume")
	if m := kubeletMounts(t, node, string(pod.UID), "kubernetes.io/csi"); len(m) > 0 {
		t.Errorf("mounts left after the pod's deletion: %v", m)
	}
}

// TestPodDeletedWhileBerthDown force-deletes a pod with a CSI volume while
// berth is down: once berth is back, the pod's containers go and its
// volume is unpublished and unstaged from what is on disk alone.
func TestPodDeletedWhileBerthDown(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	ensureCSIDriver(t, client, plain)
	_, claim := staticClaim(t, client, ns, plain, "3")
	before := len(plain.calls(t, node))
	pod := createPod(t, client, ns, writerPod("orphan", node, claim))
	cluster.WaitPod(t, client, ns, "orphan", 2*time.Minute, cluster.PodReady)
	plain.waitCalls(t, node, before, "3", "NodeStageVolume", "NodePublishVolume")

	if err := bed.StopProcesses(node, "kubelet", syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().Pods(ns).Delete(t.Context(), "orphan", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := bed.StartBerth(node); err != nil {
		t.Fatal(err)
	}
	plain.waitCalls(t, node, before, "3", "NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume")
	cluster.Poll(t, time.Minute, "no mount of the pod left", func() (bool, string) {
		m := kubeletMounts(t, node, string(pod.UID), "kubernetes.io/csi")
		return len(m) == 0, fmt.Sprint(m)
	})
}
