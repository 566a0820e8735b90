package node

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/kubelet/config"
)

// The status reports the volumes in use and leaves the attach/detach
// controller's volumesAttached alone.
func TestStatusReportsVolumesInUseAndKeepsVolumesAttached(t *testing.T) {
	client := fake.NewClientset()
	kc := &config.KubeletConfiguration{}
	config.SetDefaults(kc)
	inUse := []v1.UniqueVolumeName{"kubernetes.io/csi/fake^vol-1"}
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC))
	c, err := New(Config{
		NodeName: "node1", Client: client, Runtime: &fakeRuntime{}, Kubelet: kc, RootDir: "/",
		Machine: fakeMachine{}, Clock: clk,
		VolumesInUse: func(context.Context) []v1.UniqueVolumeName { return inUse },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	info, _ := fakeMachine{}.Info()
	if err := c.register(ctx, info); err != nil {
		t.Fatal(err)
	}
	node, _ := client.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
	c.node = node
	if err := c.updateStatus(ctx, info); err != nil {
		t.Fatal(err)
	}
	node, _ = client.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
	if len(node.Status.VolumesInUse) != 1 || node.Status.VolumesInUse[0] != inUse[0] {
		t.Fatalf("volumesInUse = %v", node.Status.VolumesInUse)
	}

	// The controller attaches; berth's next posts keep that.
	node.Status.VolumesAttached = []v1.AttachedVolume{{Name: inUse[0]}}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		clk.Step(kc.NodeStatusReportFrequency.Duration)
		if err := c.updateStatus(ctx, info); err != nil {
			t.Fatal(err)
		}
	}
	node, _ = client.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
	if len(node.Status.VolumesAttached) != 1 {
		t.Errorf("volumesAttached after berth's posts = %v", node.Status.VolumesAttached)
	}
	inUse = nil
	clk.Step(kc.NodeStatusReportFrequency.Duration)
	if err := c.updateStatus(ctx, info); err != nil {
		t.Fatal(err)
	}
	node, _ = client.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
	if len(node.Status.VolumesInUse) != 0 || len(node.Status.VolumesAttached) != 1 {
		t.Errorf("after the volume's teardown: in use %v, attached %v", node.Status.VolumesInUse, node.Status.VolumesAttached)
	}
}
