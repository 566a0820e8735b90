package csi

import (
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

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
			total += cluster.StartAndDelete(b, client, ns, pod)
		}
		emptyDir = total / time.Duration(b.N)
		b.ReportMetric(float64(emptyDir.Microseconds())/1000, "ms/pod")
	})
	b.Run("csi", func(b *testing.B) {
		var total time.Duration
		var driver float64
		for i := range b.N {
			before := len(plain.calls(b, node))
			total += cluster.StartAndDelete(b, client, ns, writerPod(fmt.Sprintf("csi-%d", i), node, claim))
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
