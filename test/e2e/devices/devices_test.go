package devices

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

const (
	resourceName = v1.ResourceName("example.com/resource")
	pluginName   = "sample-device-plugin"
	// podResourcesSocket is the pod resources API's socket on a node.
	podResourcesSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"
)

// TestSampleDevicePlugin runs the sample device plugin on the node and
// follows one pod's device through restarts of the plugin and of berth.
func TestSampleDevicePlugin(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	t.Cleanup(func() {
		_ = bed.StopPlugin(node, pluginName, syscall.SIGTERM, 10*time.Second)
		// The plugin makes its fake devices in the machine's /tmp.
		_ = os.Remove("/tmp/Dev-1")
		_ = os.Remove("/tmp/Dev-2")
	})

	startPlugin(t, node)
	waitResource(t, client, node, time.Minute, 2, 2)

	// A pod asking for one device runs with that device's mount.
	first := devicePod("first", node, 1)
	create(t, client, ns, first)
	cluster.WaitPod(t, client, ns, "first", 2*time.Minute, cluster.PodReady)
	dev := mountedDevice(t, client, ns, "first")
	t.Logf("pod first has %s", dev)
	containerID := containerOf(t, client, ns, "first")
	checkPodResources(t, node, ns, "first", dev)

	// A pod asking for more than the node has is not scheduled.
	greedy := devicePod("greedy", "", 3)
	greedy.Spec.NodeSelector = map[string]string{v1.LabelHostname: node}
	create(t, client, ns, greedy)
	cluster.WaitPod(t, client, ns, "greedy", 30*time.Second, func(p *v1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
				return p.Status.Phase == v1.PodPending
			}
		}
		return false
	})

	// A pod bound to the node without the scheduler, asking for more than
	// the node has, is rejected by berth's admission, in kubelet's words.
	create(t, client, ns, devicePod("bound", node, 3))
	bound := cluster.WaitPod(t, client, ns, "bound", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	const msg = "Pod was rejected: Allocate failed due to requested number of devices unavailable for example.com/resource. Requested: 3, Available: 1, which is unexpected"
	if bound.Status.Reason != "UnexpectedAdmissionError" || bound.Status.Message != msg {
		t.Errorf("pod bound: reason %q message %q, want UnexpectedAdmissionError and %q", bound.Status.Reason, bound.Status.Message, msg)
	}

	// The plugin restarts: its devices are unallocatable while it is away
	// and come back; the pod keeps its device and container.
	if err := bed.StopPlugin(node, pluginName, syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitResource(t, client, node, 30*time.Second, 2, 0)
	startPlugin(t, node)
	waitResource(t, client, node, time.Minute, 2, 2)
	checkSameContainer(t, client, ns, "first", containerID)
	checkPodResources(t, node, ns, "first", dev)

	// berth is killed and started again: the plugin registers again with
	// the new registration socket; the pod keeps its device; a new pod
	// gets the other device.
	if err := bed.StopProcesses(node, "kubelet", syscall.SIGKILL, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := bed.StartBerth(node); err != nil {
		t.Fatal(err)
	}
	waitPodResources(t, node, ns, "first", dev)
	waitResource(t, client, node, time.Minute, 2, 2)
	checkSameContainer(t, client, ns, "first", containerID)
	create(t, client, ns, devicePod("second", node, 1))
	cluster.WaitPod(t, client, ns, "second", 2*time.Minute, cluster.PodReady)
	if other := mountedDevice(t, client, ns, "second"); other == dev {
		t.Errorf("pod second has %s, which pod first holds", other)
	}

	// The plugin stops: the node has no allocatable device any more (its
	// capacity follows after kubelet's five-minute grace).
	if err := bed.StopPlugin(node, pluginName, syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitResource(t, client, node, 30*time.Second, 2, 0)
}

// startPlugin starts the sample device plugin on node, with its socket in
// berth's device plugin folder.
func startPlugin(t *testing.T, node string) {
	t.Helper()
	if _, err := bed.StartPlugin(node, pluginName); err != nil {
		t.Fatal(err)
	}
}

// devicePod is a busybox pod on node asking for n devices, listing the
// devices' files at start.
func devicePod(name, node string, n int64) *v1.Pod {
	q := *resource.NewQuantity(n, resource.DecimalSI)
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []v1.Container{{
				Name:    "main",
				Image:   images.BusyboxRef,
				Command: []string{"sh", "-c", "ls /tmp; trap 'exit 0' TERM; while true; do sleep 1; done"},
				Resources: v1.ResourceRequirements{
					Requests: v1.ResourceList{resourceName: q},
					Limits:   v1.ResourceList{resourceName: q},
				},
			}},
		},
	}
}

func create(t *testing.T, client kubernetes.Interface, ns string, p *v1.Pod) {
	t.Helper()
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitResource waits until the node's capacity and allocatable of the
// resource are as wanted.
func waitResource(t *testing.T, client kubernetes.Interface, node string, timeout time.Duration, capacity, allocatable int64) {
	t.Helper()
	start := time.Now()
	cluster.Poll(t, timeout, fmt.Sprintf("node %s %s capacity %d, allocatable %d", node, resourceName, capacity, allocatable), func() (bool, string) {
		n, err := client.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		c, a := n.Status.Capacity[resourceName], n.Status.Allocatable[resourceName]
		return c.Value() == capacity && a.Value() == allocatable, fmt.Sprintf("capacity %s, allocatable %s", c.String(), a.String())
	})
	t.Logf("%s: capacity %d, allocatable %d after %s", resourceName, capacity, allocatable, time.Since(start).Round(time.Millisecond))
}

// mountedDevice returns the one device file (Dev-1 or Dev-2) the pod's
// container saw in /tmp.
func mountedDevice(t *testing.T, client kubernetes.Interface, ns, pod string) string {
	t.Helper()
	var found []string
	cluster.Poll(t, 30*time.Second, "device files in the log of "+pod, func() (bool, string) {
		r, err := client.CoreV1().Pods(ns).GetLogs(pod, &v1.PodLogOptions{Container: "main"}).Stream(t.Context())
		if err != nil {
			return false, err.Error()
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			return false, err.Error()
		}
		found = nil
		for _, f := range strings.Fields(string(b)) {
			if f == "Dev-1" || f == "Dev-2" {
				found = append(found, f)
			}
		}
		return len(found) > 0, string(b)
	})
	if len(found) != 1 {
		t.Fatalf("pod %s sees device files %v, want exactly one", pod, found)
	}
	return found[0]
}

func containerOf(t *testing.T, client kubernetes.Interface, ns, pod string) string {
	t.Helper()
	p, err := client.CoreV1().Pods(ns).Get(t.Context(), pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Status.ContainerStatuses[0].ContainerID
}

// checkSameContainer checks that the pod runs the same container as
// before, never restarted.
func checkSameContainer(t *testing.T, client kubernetes.Interface, ns, pod, id string) {
	t.Helper()
	p := cluster.WaitPod(t, client, ns, pod, 30*time.Second, cluster.PodReady)
	cs := p.Status.ContainerStatuses[0]
	if cs.ContainerID != id || cs.RestartCount != 0 {
		t.Errorf("pod %s: container %s (restarts %d), want %s never restarted", pod, cs.ContainerID, cs.RestartCount, id)
	}
}

// listPodResources calls List on the node's pod resources socket, reached
// through the host folder.
func listPodResources(ctx context.Context, node string) (*podresourcesapi.ListPodResourcesResponse, error) {
	sock, err := bed.HostPath(node, podResourcesSocket)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return podresourcesapi.NewPodResourcesListerClient(conn).List(ctx, &podresourcesapi.ListPodResourcesRequest{})
}

// podDevice returns the devices of the resource that List shows for the
// pod's container main.
func podDevice(list *podresourcesapi.ListPodResourcesResponse, ns, pod string) []string {
	for _, p := range list.GetPodResources() {
		if p.Namespace != ns || p.Name != pod {
			continue
		}
		for _, c := range p.Containers {
			for _, d := range c.Devices {
				if c.Name == "main" && d.ResourceName == string(resourceName) {
					return d.DeviceIds
				}
			}
		}
	}
	return nil
}

func checkPodResources(t *testing.T, node, ns, pod, dev string) {
	t.Helper()
	list, err := listPodResources(t.Context(), node)
	if err != nil {
		t.Fatalf("pod resources List: %v", err)
	}
	if got := podDevice(list, ns, pod); len(got) != 1 || got[0] != dev {
		t.Errorf("pod resources List: pod %s has %v, want [%s]", pod, got, dev)
	}
}

// waitPodResources waits until List answers (berth restarts) and shows the
// pod's device.
func waitPodResources(t *testing.T, node, ns, pod, dev string) {
	t.Helper()
	cluster.Poll(t, time.Minute, "pod resources List showing "+pod, func() (bool, string) {
		list, err := listPodResources(t.Context(), node)
		if err != nil {
			return false, err.Error()
		}
		got := podDevice(list, ns, pod)
		return len(got) == 1 && got[0] == dev, fmt.Sprint(got)
	})
}
