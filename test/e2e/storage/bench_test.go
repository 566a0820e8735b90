package storage

import (
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// BenchmarkPodStart measures the time from a pod's creation (bound to the
// node: scheduled) to its Ready condition, for a pod with an emptyDir and
// for the same pod with a claim bound to a local PV, and reports the
// difference: what reading the claim and the PV and bind-mounting the PV
// add. Run with -benchtime=Nx.
func BenchmarkPodStart(b *testing.B) {
	testbed.Require(b, bed)
	client := cluster.AdminClient(b, bed)
	node := bed.Nodes()[0].Name
	// Made once: the sub-benchmarks run more than once (b.N = 1 first).
	ns := cluster.Namespace(b, client)
	class, pvName := ns+"-static", ns+"-bench"
	disk := localDisk(b, node, pvName)
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).Create(b.Context(), &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: claimSpec(class),
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	localPV(b, client, pvName, class, node, disk, &v1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: ns, Name: "bench"})
	cluster.Poll(b, time.Minute, "claim bench bound", func() (bool, string) {
		c, err := client.CoreV1().PersistentVolumeClaims(ns).Get(b.Context(), "bench", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return c.Status.Phase == v1.ClaimBound, string(c.Status.Phase)
	})
	var emptyDir float64
	b.Run("emptyDir", func(b *testing.B) {
		emptyDir = runPods(b, client, ns, node, "empty", v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}})
	})
	b.Run("localPV", func(b *testing.B) {
		perPod := runPods(b, client, ns, node, "local", v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "bench"}})
		if emptyDir > 0 {
			b.ReportMetric(perPod-emptyDir, "added-ms/pod")
		}
	})
}

// runPods starts and deletes b.N pods with the volume src, one after the
// other, and reports and returns their mean time to Ready in ms.
func runPods(b *testing.B, client kubernetes.Interface, ns, node, prefix string, src v1.VolumeSource) float64 {
	var total time.Duration
	failed := 0
	for i := range b.N {
		pod := sleeper(fmt.Sprintf("%s-%d", prefix, i), node, v1.Volume{Name: "data", VolumeSource: src})
		took := cluster.StartAndDelete(b, client, ns, pod)
		total += took
		// A failed setup is retried after a second: it shows in the mean.
		if msgs := events(b, client, ns, pod.Name, "FailedMount"); len(msgs) > 0 {
			failed++
			b.Logf("pod %s ready after %s, FailedMount: %v", pod.Name, took, msgs)
		}
	}
	perPod := float64(total.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(perPod, "ms/pod")
	b.ReportMetric(float64(failed)/float64(b.N), "failed-mounts/pod")
	return perPod
}
