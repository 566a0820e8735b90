package storage

import (
	"fmt"
	"path"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestTeardownOfPodsDeletedWhileDown: two pods with local PVs are deleted
// while berth is down, one of them with its sandbox removed too. Started
// again, berth unmounts both pods' volumes and removes their directories;
// the PVs' data stays.
func TestTeardownOfPodsDeletedWhileDown(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0]
	class := ns + "-static"
	uids := map[string]string{}
	disks := map[string]string{}
	for _, name := range []string{"sandbox-kept", "sandbox-lost"} {
		pvName := ns + "-" + name
		disks[name] = localDisk(t, node.Name, pvName)
		if _, err := client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &v1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: claimSpec(class),
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		localPV(t, client, pvName, class, node.Name, disks[name], &v1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: ns, Name: name})
		pod := sleeper(name, node.Name, v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{
			PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: name},
		}})
		pod.Spec.AutomountServiceAccountToken = ptr.To(false)
		if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for name := range disks {
		p := cluster.WaitPod(t, client, ns, name, 2*time.Minute, cluster.PodReady)
		uids[name] = string(p.UID)
		if got := mountsBelow(t, node.Name, podDirOf(string(p.UID))); len(got) != 1 {
			t.Fatalf("pod %s: mounts %v, want its local volume", name, got)
		}
	}

	if err := bed.StopProcesses(node.Name, "kubelet", syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ensureBerth(t, node.Name) })
	for name := range disks {
		if err := client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
	}
	removeSandbox(t, node, uids["sandbox-lost"])
	if _, err := bed.StartBerth(node.Name); err != nil {
		t.Fatal(err)
	}
	for name, uid := range uids {
		dir := podDirOf(uid)
		cluster.Poll(t, time.Minute, "volumes of "+name+" torn down", func() (bool, string) {
			mounts := mountsBelow(t, node.Name, dir)
			out, err := bed.Output(ctx, node.Name, "sh", "-c", "test -e "+dir+" && echo present || echo absent")
			state := strings.TrimSpace(string(out))
			return err == nil && len(mounts) == 0 && state == "absent", fmt.Sprintf("mounts %v, directory %s %v", mounts, state, err)
		})
		if out, err := bed.Output(ctx, node.Name, "cat", path.Join(disks[name], "hello")); err != nil || len(out) == 0 {
			t.Errorf("pod %s's write on its PV after the teardown: %q, %v", name, out, err)
		}
	}
}

// podDirOf is the pod's directory on the node.
func podDirOf(uid string) string {
	return path.Join("/var/lib/kubelet/pods", uid)
}

// removeSandbox stops and removes the pod's sandboxes through the node's
// CRI, as a reboot or a runtime losing its state would.
func removeSandbox(t *testing.T, node testbed.Node, uid string) {
	t.Helper()
	rt, err := cri.Dial(node.CRIEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx := t.Context()
	list, err := rt.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) == 0 {
		t.Fatalf("no sandbox of pod %s", uid)
	}
	for _, sb := range list.Items {
		if _, err := rt.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			t.Fatal(err)
		}
	}
}

// ensureBerth starts berth on node again if a failed test left it down.
func ensureBerth(t *testing.T, node string) {
	pids, err := bed.FindProcesses(node, "kubelet")
	if err == nil && len(pids) > 0 {
		return
	}
	if _, err := bed.StartBerth(node); err != nil {
		t.Errorf("start berth again: %v", err)
	}
}
