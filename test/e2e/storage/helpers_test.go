package storage

import (
	"context"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
)

// disksDir is where the tests make the directories that stand for a
// node's local disks: below /var, which each bed host has of its own.
const disksDir = "/var/local-disks"

// onNode runs args on the node and returns their output.
func onNode(t testing.TB, node string, args ...string) string {
	t.Helper()
	out, err := bed.Output(t.Context(), node, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// localDisk makes the directory of a local PV on the node, empty, and
// removes it after the test.
func localDisk(t testing.TB, node, name string) string {
	t.Helper()
	dir := path.Join(disksDir, name)
	onNode(t, node, "sh", "-c", fmt.Sprintf("rm -rf %s && mkdir -p %s", dir, dir))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = bed.Output(ctx, node, "rm", "-rf", dir)
	})
	return dir
}

// localStorageClass makes a StorageClass without a provisioner that binds
// when the first pod is scheduled, as local volumes need.
func localStorageClass(t testing.TB, client kubernetes.Interface, name string) {
	t.Helper()
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	_, err := client.StorageV1().StorageClasses().Create(t.Context(), &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: name},
		Provisioner:       "kubernetes.io/no-provisioner",
		VolumeBindingMode: &mode,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.StorageV1().StorageClasses().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// localPV makes a local PersistentVolume of class on dir of node, with the
// node affinity the scheduler places its pods by. claim, when set,
// pre-binds it to that claim.
func localPV(t testing.TB, client kubernetes.Interface, name, class, node, dir string, claim *v1.ObjectReference) {
	t.Helper()
	createPV(t, client, localPVSpec(t, client, name, class, node, dir, claim))
}

// localPVSpec is the local PersistentVolume localPV makes.
func localPVSpec(t testing.TB, client kubernetes.Interface, name, class, node, dir string, claim *v1.ObjectReference) *v1.PersistentVolume {
	t.Helper()
	n, err := client.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hostname := n.Labels[v1.LabelHostname]
	if hostname == "" {
		t.Fatalf("node %s has no %s label", node, v1.LabelHostname)
	}
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: v1.PersistentVolumeReclaimRetain,
			StorageClassName:              class,
			ClaimRef:                      claim,
			PersistentVolumeSource:        v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: dir}},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: []string{hostname}}},
			}}}},
		},
	}
}

// createPV creates pv and deletes it after the test.
func createPV(t testing.TB, client kubernetes.Interface, pv *v1.PersistentVolume) {
	t.Helper()
	if _, err := client.CoreV1().PersistentVolumes().Create(t.Context(), pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
	})
}

// claimSpec asks for 1Gi of class, read-write by one node.
func claimSpec(class string) v1.PersistentVolumeClaimSpec {
	return v1.PersistentVolumeClaimSpec{
		AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
		StorageClassName: ptr.To(class),
		Resources:        v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")}},
	}
}

// events returns the messages of the pod's events with reason.
func events(t testing.TB, client kubernetes.Interface, ns, pod, reason string) []string {
	t.Helper()
	list, err := client.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: fields.Set{
		"involvedObject.kind": "Pod", "involvedObject.name": pod, "reason": reason,
	}.String()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Message)
	}
	return out
}

// mountsBelow returns the node's mount points below dir.
func mountsBelow(t *testing.T, node, dir string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(onNode(t, node, "cat", "/proc/self/mountinfo"), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// waitGone polls until the pod is deleted.
func waitGone(t *testing.T, client kubernetes.Interface, ns, name string, uid string) {
	t.Helper()
	cluster.Poll(t, 2*time.Minute, "pod "+name+" gone", func() (bool, string) {
		p, err := client.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return string(p.UID) != uid, cluster.Describe(p)
	})
}

// containerCreating tells that the pod waits for its volumes.
func containerCreating(p *v1.Pod) bool {
	if p.Status.Phase != v1.PodPending || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	w := p.Status.ContainerStatuses[0].State.Waiting
	return w != nil && w.Reason == "ContainerCreating"
}
