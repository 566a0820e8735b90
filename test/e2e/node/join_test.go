package node

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

func nowUnixNano() int64 { return time.Now().UnixNano() }

// TestJoinedNodesAreReady checks what `kubeadm join` with berth leaves: each
// node Ready within 60 s of joining, with the status kubelet would report.
func TestJoinedNodesAreReady(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	for _, n := range bed.Nodes() {
		t.Run(n.Name, func(t *testing.T) {
			deadline := time.Unix(0, joinedAt[n.Name]).Add(60 * time.Second)
			node := waitNode(t, client, n.Name, deadline, func(node *v1.Node) bool {
				return condition(node, v1.NodeReady) == v1.ConditionTrue
			})
			checkNodeStatus(t, node, n)
		})
	}
}

func checkNodeStatus(t *testing.T, node *v1.Node, n testbed.Node) {
	t.Helper()
	info := node.Status.NodeInfo
	if info.KubeletVersion != testbed.KubernetesVersion {
		t.Errorf("kubeletVersion %q, want %s", info.KubeletVersion, testbed.KubernetesVersion)
	}
	if !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://1.") {
		t.Errorf("containerRuntimeVersion %q, want containerd://1.x", info.ContainerRuntimeVersion)
	}
	if info.MachineID == "" || info.BootID == "" || info.KernelVersion == "" || info.OSImage == "" || info.OperatingSystem != "linux" {
		t.Errorf("incomplete nodeInfo: %+v", info)
	}
	wantAddrs := []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: n.IP}, {Type: v1.NodeHostName, Address: n.Name}}
	if len(node.Status.Addresses) != 2 || node.Status.Addresses[0] != wantAddrs[0] || node.Status.Addresses[1] != wantAddrs[1] {
		t.Errorf("addresses %v, want %v", node.Status.Addresses, wantAddrs)
	}
	for _, r := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourcePods, v1.ResourceEphemeralStorage} {
		c, a := node.Status.Capacity[r], node.Status.Allocatable[r]
		if c.Sign() <= 0 || a.Sign() <= 0 || a.Cmp(c) > 0 {
			t.Errorf("%s: capacity %s allocatable %s; want 0 < allocatable <= capacity", r, c.String(), a.String())
		}
	}
	// Allocatable memory is capacity less the 100Mi hard eviction threshold.
	mem := node.Status.Capacity.Memory().DeepCopy()
	mem.Sub(*node.Status.Allocatable.Memory())
	if mem.Value() != 100<<20 {
		t.Errorf("capacity - allocatable memory = %s, want 100Mi (evictionHard memory.available)", mem.String())
	}
	if got := node.Status.Capacity[v1.ResourcePods]; got.Value() != 110 {
		t.Errorf("pods capacity %s, want 110", got.String())
	}
	if node.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
		t.Errorf("kubelet endpoint port %d, want 10250", node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	}
	for _, c := range []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure} {
		if got := condition(node, c); got != v1.ConditionFalse {
			t.Errorf("condition %s = %s, want False", c, got)
		}
	}
	for _, l := range []string{v1.LabelHostname, v1.LabelOSStable, v1.LabelArchStable} {
		if node.Labels[l] == "" {
			t.Errorf("label %s missing: %v", l, node.Labels)
		}
	}
}

// TestLeaseRenews checks that each node's Lease is renewed every ~10 s.
func TestLeaseRenews(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ctx := t.Context()
	for _, n := range bed.Nodes() {
		first, err := client.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("lease of %s: %v", n.Name, err)
		}
		if *first.Spec.HolderIdentity != n.Name || *first.Spec.LeaseDurationSeconds != 40 {
			t.Errorf("lease of %s: holder %q duration %d; want %s, 40", n.Name, *first.Spec.HolderIdentity, *first.Spec.LeaseDurationSeconds, n.Name)
		}
		if len(first.OwnerReferences) != 1 || first.OwnerReferences[0].Kind != "Node" {
			t.Errorf("lease of %s: owners %v, want its Node", n.Name, first.OwnerReferences)
		}
		deadline := time.Now().Add(25 * time.Second)
		for attempt := 0; ; attempt++ {
			l, err := client.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(ctx, n.Name, metav1.GetOptions{})
			if err == nil && l.Spec.RenewTime.After(first.Spec.RenewTime.Time) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease of %s not renewed within 25s (renewTime %v)", n.Name, first.Spec.RenewTime)
			}
			pause(ctx, attempt)
		}
	}
}

func adminClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	return cluster.AdminClient(t, bed)
}

// waitNode polls the Node until ok accepts it or the deadline passes.
func waitNode(t *testing.T, client kubernetes.Interface, name string, deadline time.Time, ok func(*v1.Node) bool) *v1.Node {
	t.Helper()
	ctx := t.Context()
	var last *v1.Node
	for attempt := 0; ; attempt++ {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = n
			if ok(n) {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: condition not met by %s; last conditions %v (error %v)", name, deadline.Format(time.TimeOnly), conditionsOf(last), err)
		}
		pause(ctx, attempt)
	}
}

func condition(n *v1.Node, kind v1.NodeConditionType) v1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == kind {
			return c.Status
		}
	}
	return v1.ConditionUnknown
}

func conditionsOf(n *v1.Node) []string {
	if n == nil {
		return nil
	}
	var out []string
	for _, c := range n.Status.Conditions {
		out = append(out, string(c.Type)+"="+string(c.Status)+" ("+c.Message+")")
	}
	return out
}

// pause waits a growing interval between polls, or until ctx ends.
func pause(ctx context.Context, attempt int) { cluster.Pause(ctx, attempt) }

// TestKubeProxyStaysOff checks that kubeadm's kube-proxy DaemonSet, patched
// as the README says, puts no pod on the nodes berth labels as its own.
func TestKubeProxyStaysOff(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ctx := t.Context()
	if _, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{}); err != nil {
		t.Fatalf("kubeadm's kube-proxy add-on: %v", err)
	}
	for _, n := range bed.Nodes() {
		node, err := client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if node.Labels["berthnode.io/service-proxy"] != "berth" {
			t.Errorf("node %s labels %v: want berthnode.io/service-proxy=berth", n.Name, node.Labels)
		}
	}
	// The DaemonSet controller has seen the nodes: it wants no pod.
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		ds, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
		if err == nil && ds.Status.ObservedGeneration >= ds.Generation && ds.Status.DesiredNumberScheduled == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-proxy DaemonSet wants %d pods on berth nodes (err %v)", ds.Status.DesiredNumberScheduled, err)
		}
		pause(ctx, attempt)
	}
	pods, err := client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-proxy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("%d kube-proxy pods exist, want none on berth nodes", len(pods.Items))
	}
}
