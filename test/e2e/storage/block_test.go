package storage

import (
	"context"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// TestBlockLocalPV: a local PV with volumeMode Block (a loop device of the
// node) reaches the container as the device its volumeDevices names; what
// the container writes there lands in the device's backing file. The same
// claim in volumeMounts is refused, naming the volume.
func TestBlockLocalPV(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0].Name
	dir := localDisk(t, node, ns+"-block")
	image := path.Join(dir, "disk.img")
	onNode(t, node, "truncate", "-s", "1M", image)
	out, err := bed.Output(ctx, node, "losetup", "-f", "--show", image)
	if err != nil {
		t.Skipf("no loop device to stand for a block disk: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := bed.Output(ctx, node, "losetup", "-d", dev); err != nil {
			t.Errorf("detach %s: %v", dev, err)
		}
	})

	class, pvName := ns+"-static", ns+"-block"
	block := v1.PersistentVolumeBlock
	spec := claimSpec(class)
	spec.VolumeMode = &block
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "raw"}, Spec: spec,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pv := localPVSpec(t, client, pvName, class, node, dev, &v1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: ns, Name: "raw"})
	pv.Spec.VolumeMode = &block
	createPV(t, client, pv)

	raw := v1.Volume{Name: "raw", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "raw"}}}
	writer := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "writer"},
		Spec: v1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []v1.Container{{
				Name: "main", Image: images.BusyboxRef,
				Command:       []string{"sh", "-c", "echo block-data-ok | dd of=/dev/xvda conv=notrunc && sleep 3600"},
				VolumeDevices: []v1.VolumeDevice{{Name: "raw", DevicePath: "/dev/xvda"}},
			}},
			Volumes: []v1.Volume{raw},
		},
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, writer, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "writer", 2*time.Minute, cluster.PodReady)
	cluster.Poll(t, 30*time.Second, "the container's write on the block device", func() (bool, string) {
		out, err := bed.Output(ctx, node, "head", "-c", "13", image)
		return err == nil && string(out) == "block-data-ok", fmt.Sprintf("%q %v", out, err)
	})

	// The block volume as a file system: refused.
	mounter := sleeper("mounter", node, raw)
	if _, err := client.CoreV1().Pods(ns).Create(ctx, mounter, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := `volume "raw": volume raw has volumeMode Block, but is specified in volumeMounts`
	cluster.Poll(t, time.Minute, "FailedMount event refusing the block volume in volumeMounts", func() (bool, string) {
		msgs := events(t, client, ns, "mounter", "FailedMount")
		for _, m := range msgs {
			if strings.Contains(m, want) {
				return true, ""
			}
		}
		return false, fmt.Sprint(msgs)
	})
}
