package csi

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestDriversGoAndComeBack stops both drivers (their sockets go): berth
// removes them from the CSINode object and the Node's node ID annotation;
// started again, they are registered again.
func TestDriversGoAndComeBack(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	node := bed.Nodes()[0].Name
	if err := bed.StopPlugin(node, "csimock", syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	started := false
	defer func() {
		if !started {
			for _, d := range []mockDriver{plain, attach, tokens} {
				_ = d.start(bed, node)
			}
		}
	}()
	waitDrivers := func(want int) {
		t.Helper()
		cluster.Poll(t, time.Minute, fmt.Sprintf("%d drivers in the CSINode and the Node", want), func() (bool, string) {
			cn, err := client.StorageV1().CSINodes().Get(t.Context(), node, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			n, err := client.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			ann, ok := n.Annotations["csi.volume.kubernetes.io/nodeid"]
			return len(cn.Spec.Drivers) == want && ok == (want > 0), fmt.Sprintf("drivers %+v, annotation %q", cn.Spec.Drivers, ann)
		})
	}
	waitDrivers(0)
	started = true
	for _, d := range []mockDriver{plain, attach, tokens} {
		if err := d.start(bed, node); err != nil {
			t.Fatal(err)
		}
	}
	waitDrivers(3)
}
