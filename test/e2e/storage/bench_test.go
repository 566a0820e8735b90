package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
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
		took := startAndDelete(b, client, ns, pod)
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

// startAndDelete creates pod, returns the time until it is Ready as seen
// by a watch, then deletes it and waits until it is gone (its volume torn
// down, so that the next pod may use the claim).
func startAndDelete(b *testing.B, client kubernetes.Interface, ns string, pod *v1.Pod) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
	defer cancel()
	w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", pod.Name).String()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	start := time.Now()
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	var took time.Duration
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*v1.Pod); ok && cluster.PodReady(p) {
			took = time.Since(start)
			break
		}
	}
	if took == 0 {
		b.Fatalf("pod %s not ready within 2 minutes", pod.Name)
	}
	if err := client.CoreV1().Pods(ns).Delete(b.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		b.Fatal(err)
	}
	cluster.Poll(b, 2*time.Minute, "pod "+pod.Name+" gone", func() (bool, string) {
		_, err := client.CoreV1().Pods(ns).Get(b.Context(), pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	return took
}
