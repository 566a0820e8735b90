package csi

import (
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestOnlineExpansion: with the test playing the external resizer (the
// PV's capacity grows, the claim waits for the node), berth calls
// NodeExpandVolume for the running pod's volume and records the new size
// in the claim's status, as the kubelet does.
func TestOnlineExpansion(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	ctx := t.Context()
	ensureCSIDriver(t, client, plain)
	pvName, claim := staticClaim(t, client, ns, plain, "5")
	createPod(t, client, ns, writerPod("growing", node, claim))
	cluster.WaitPod(t, client, ns, "growing", 2*time.Minute, cluster.PodReady)

	bigger := resource.MustParse("2Gi")
	pv, err := client.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv.Spec.Capacity[v1.ResourceStorage] = bigger
	if _, err := client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pvc.Status.AllocatedResources = v1.ResourceList{v1.ResourceStorage: bigger}
	pvc.Status.AllocatedResourceStatuses = map[v1.ResourceName]v1.ClaimResourceStatus{v1.ResourceStorage: v1.PersistentVolumeClaimNodeResizePending}
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cluster.Poll(t, 3*time.Minute, "claim's capacity 2Gi", func() (bool, string) {
		got, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c := got.Status.Capacity[v1.ResourceStorage]
		return c.Cmp(bigger) == 0 && len(got.Status.AllocatedResourceStatuses) == 0, fmt.Sprintf("%+v", got.Status)
	})
	t.Logf("claim resized %s after the resize request", time.Since(start).Round(time.Millisecond))
	found := false
	for _, c := range volumeCalls(plain.calls(t, node), "5") {
		found = found || (c.Method == "NodeExpandVolume" && c.Code == "OK")
	}
	if !found {
		t.Errorf("no successful NodeExpandVolume for volume 5: %v", methods(volumeCalls(plain.calls(t, node), "5")))
	}
	deletePod(t, client, ns, "growing", time.Minute)
}
