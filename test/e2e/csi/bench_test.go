package csi

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// BenchmarkPodStart measures the time from a pod's creation (bound to the
// node: scheduled) to its Ready condition, for a pod with an emptyDir and
// for the same pod with a CSI volume of the mock driver; for the latter it
// reports the driver's own NodeStageVolume + NodePublishVolume time (from
// calls.jsonl) and berth's added latency: the CSI pod's time less the
// emptyDir pod's and the driver's. Run with -benchtime=Nx.
func BenchmarkPodStart(b *testing.B) {
	testbed.Require(b, bed)
	client := cluster.AdminClient(b, bed)
	node := bed.Nodes()[0].Name
	// Made once: the sub-benchmarks run more than once (b.N = 1 first).
	ns := cluster.Namespace(b, client)
	ensureCSIDriver(b, client, plain)
	_, claim := staticClaim(b, client, ns, plain, "4")
	var emptyDir time.Duration
	b.Run("emptyDir", func(b *testing.B) {
		var total time.Duration
		for i := range b.N {
			pod := writerPod(fmt.Sprintf("empty-%d", i), node, "")
			pod.Spec.Volumes[0].VolumeSource = v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}
			total += startAndDelete(b, client, ns, pod)
		}
		emptyDir = total / time.Duration(b.N)
		b.ReportMetric(float64(emptyDir.Microseconds())/1000, "ms/pod")
	})
	b.Run("csi", func(b *testing.B) {
		var total time.Duration
		var driver float64
		for i := range b.N {
			before := len(plain.calls(b, node))
			total += startAndDelete(b, client, ns, writerPod(fmt.Sprintf("csi-%d", i), node, claim))
			for _, c := range volumeCalls(plain.calls(b, node)[before:], "4") {
				if c.Method == "NodeStageVolume" || c.Method == "NodePublishVolume" {
					driver += c.Millis
				}
			}
		}
		perPod := float64(total.Microseconds()) / 1000 / float64(b.N)
		driverPerPod := driver / float64(b.N)
		b.ReportMetric(perPod, "ms/pod")
		b.ReportMetric(driverPerPod, "driver-ms/pod")
		if emptyDir > 0 {
			b.ReportMetric(perPod-float64(emptyDir.Microseconds())/1000-driverPerPod, "added-ms/pod")
		}
	})
}

// startAndDelete creates pod, returns the time until it is Ready as seen
// by a watch, then deletes it and waits until it is gone.
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
		return err != nil, fmt.Sprint(err)
	})
	return took
}
