package node

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/berthnode/berth/kubelet/config"
)

// fakeRuntime reports a runtime whose network readiness the test sets.
type fakeRuntime struct {
	mu           sync.Mutex
	networkReady bool
}

func (r *fakeRuntime) setNetworkReady(ready bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.networkReady = ready
}

func (r *fakeRuntime) Status(context.Context, bool) (*runtimeapi.StatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	net := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: r.networkReady}
	if !r.networkReady {
		net.Reason, net.Message = "NetworkPluginNotReady", "cni plugin not initialized"
	}
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true}, net,
	}}}, nil
}

func (r *fakeRuntime) Version(context.Context, string) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "containerd", RuntimeVersion: "1.6.20"}, nil
}

// fakeMachine is a fixed machine.
type fakeMachine struct{}

func (fakeMachine) Info() (MachineInfo, error) {
	return MachineInfo{CPUs: 2, MemoryBytes: 4 * gi, KernelVersion: "6.1.0", OSImage: "Debian GNU/Linux 12 (bookworm)", MachineID: "m1", BootID: "b1", Architecture: "amd64"}, nil
}

func (fakeMachine) Usage(string) (Usage, error) {
	return Usage{MemoryAvailableBytes: 3 * gi, FSCapacityBytes: 50 * gi, FSAvailableBytes: 40 * gi, FSInodes: 1000, FSInodesFree: 900, PIDMax: 4096, PIDsInUse: 100}, nil
}

func (fakeMachine) DefaultRouteIPs() ([]net.IP, error) {
	return []net.IP{net.ParseIP("192.168.200.11")}, nil
}

func TestControllerRegistersAndReportsReadiness(t *testing.T) {
	client := fake.NewClientset()
	rt := &fakeRuntime{}
	var podsErr error = errors.New("not started")
	var mu sync.Mutex
	kc := &config.KubeletConfiguration{}
	config.SetDefaults(kc)
	c, err := New(Config{
		NodeName: "node1",
		Client:   client,
		Runtime:  rt,
		Kubelet:  kc,
		Labels:   map[string]string{"role": "edge"},
		Taints:   []v1.Taint{{Key: "dedicated", Value: "infra", Effect: v1.TaintEffectNoSchedule}},
		RootDir:  "/var/lib/kubelet",
		Checks: []Check{{Name: "pod workers", Ready: func() error {
			mu.Lock()
			defer mu.Unlock()
			return podsErr
		}}},
		Machine: fakeMachine{},
		Clock:   testingclock.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	node := waitFor(t, client, func(n *v1.Node) bool { return readyStatus(n) == v1.ConditionFalse })
	if node.Labels["role"] != "edge" || node.Labels[v1.LabelHostname] != "node1" || node.Labels[v1.LabelArchStable] != "amd64" {
		t.Errorf("labels %v", node.Labels)
	}
	if len(node.Spec.Taints) != 1 || node.Spec.Taints[0].Key != "dedicated" {
		t.Errorf("taints %v", node.Spec.Taints)
	}
	msg := readyCondition(node).Message
	for _, want := range []string{"container runtime network not ready", "pod workers not ready: not started"} {
		if !contains(msg, want) {
			t.Errorf("Ready message %q lacks %q", msg, want)
		}
	}
	if node.Status.NodeInfo.ContainerRuntimeVersion != "containerd://1.6.20" || node.Status.Addresses[0].Address != "192.168.200.11" {
		t.Errorf("status %+v", node.Status)
	}
	if !c.Registered() || c.Healthy() != nil {
		t.Error("controller does not report registered")
	}

	rt.setNetworkReady(true)
	mu.Lock()
	podsErr = nil
	mu.Unlock()
	c.Kick()
	waitFor(t, client, func(n *v1.Node) bool { return readyStatus(n) == v1.ConditionTrue })

	lease := waitForLease(t, client)
	if len(lease.OwnerReferences) != 1 || lease.OwnerReferences[0].Name != "node1" {
		t.Errorf("lease owners %v, want node1", lease.OwnerReferences)
	}
}

func TestRegisterAdoptsExistingNode(t *testing.T) {
	existing := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{"team": "a"}}, Spec: v1.NodeSpec{PodCIDR: "10.244.1.0/24"}}
	client := fake.NewClientset(existing)
	kc := &config.KubeletConfiguration{}
	config.SetDefaults(kc)
	c, err := New(Config{NodeName: "node1", Client: client, Runtime: &fakeRuntime{}, Kubelet: kc, RootDir: "/", Machine: fakeMachine{}, Clock: testingclock.NewFakeClock(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := fakeMachine{}.Info()
	if err := c.register(t.Context(), info); err != nil {
		t.Fatal(err)
	}
	got, err := client.CoreV1().Nodes().Get(t.Context(), "node1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["team"] != "a" || got.Labels[v1.LabelOSStable] != "linux" || got.Spec.PodCIDR != "10.244.1.0/24" {
		t.Errorf("adopted node: labels %v podCIDR %q; want old labels kept, ours added, spec kept", got.Labels, got.Spec.PodCIDR)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (&Config{}).Validate(); err == nil {
		t.Error("empty config: no error")
	}
}

func waitFor(t *testing.T, client *fake.Clientset, ok func(*v1.Node) bool) *v1.Node {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := client.CoreV1().Nodes().Get(t.Context(), "node1", metav1.GetOptions{})
		if err == nil && ok(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not as expected within 5s: %+v, %v", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitForLease(t *testing.T, client *fake.Clientset) *coordinationv1.Lease {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := client.CoordinationV1().Leases(v1.NamespaceNodeLease).Get(t.Context(), "node1", metav1.GetOptions{})
		if err == nil && len(l.OwnerReferences) > 0 {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lease with an owner within 5s: %v, %v", l, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestExtendedResources: the device plugins' resources go into capacity
// and allocatable and follow their changes; an extended resource someone
// else put on the Node stays, with allocatable equal to its capacity.
func TestExtendedResources(t *testing.T) {
	existing := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}, Status: v1.NodeStatus{
		Capacity: v1.ResourceList{"example.com/dongle": resource.MustParse("4")},
	}}
	client := fake.NewClientset(existing)
	kc := &config.KubeletConfiguration{}
	config.SetDefaults(kc)
	var mu sync.Mutex
	devCap, devAlloc := resource.MustParse("2"), resource.MustParse("1")
	c, err := New(Config{NodeName: "node1", Client: client, Runtime: &fakeRuntime{}, Kubelet: kc, RootDir: "/", Machine: fakeMachine{},
		Clock: testingclock.NewFakeClock(time.Now()),
		ExtendedResources: func() (v1.ResourceList, v1.ResourceList) {
			mu.Lock()
			defer mu.Unlock()
			return v1.ResourceList{"example.com/resource": devCap}, v1.ResourceList{"example.com/resource": devAlloc}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	has := func(l v1.ResourceList, name v1.ResourceName, want int64) bool {
		q, ok := l[name]
		return ok && q.Value() == want
	}
	node := waitFor(t, client, func(n *v1.Node) bool {
		return has(n.Status.Capacity, "example.com/resource", 2) && has(n.Status.Allocatable, "example.com/resource", 1)
	})
	if !has(node.Status.Capacity, "example.com/dongle", 4) || !has(node.Status.Allocatable, "example.com/dongle", 4) {
		t.Errorf("the administrator's resource: capacity %v, allocatable %v; want 4 and 4", node.Status.Capacity, node.Status.Allocatable)
	}
	if !has(node.Status.Capacity, v1.ResourceCPU, 2) {
		t.Errorf("cpu capacity lost: %v", node.Status.Capacity)
	}
	mu.Lock()
	devCap, devAlloc = resource.MustParse("0"), resource.MustParse("0")
	mu.Unlock()
	c.Kick()
	node = waitFor(t, client, func(n *v1.Node) bool {
		return has(n.Status.Capacity, "example.com/resource", 0) && has(n.Status.Allocatable, "example.com/resource", 0)
	})
	if !has(node.Status.Capacity, "example.com/dongle", 4) {
		t.Errorf("the administrator's resource went: %v", node.Status.Capacity)
	}
}

// TestResetExtendedResources: adopting a Node with no device state zeroes
// its extended resources, as the kubelet does; with device state they stay.
func TestResetExtendedResources(t *testing.T) {
	for _, reset := range []bool{true, false} {
		existing := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}, Status: v1.NodeStatus{
			Capacity:    v1.ResourceList{"example.com/resource": resource.MustParse("2"), v1.ResourceCPU: resource.MustParse("2")},
			Allocatable: v1.ResourceList{"example.com/resource": resource.MustParse("2"), v1.ResourceCPU: resource.MustParse("2")},
		}}
		client := fake.NewClientset(existing)
		kc := &config.KubeletConfiguration{}
		config.SetDefaults(kc)
		c, err := New(Config{NodeName: "node1", Client: client, Runtime: &fakeRuntime{}, Kubelet: kc, RootDir: "/", Machine: fakeMachine{},
			Clock: testingclock.NewFakeClock(time.Now()), ResetExtendedResources: func() bool { return reset }})
		if err != nil {
			t.Fatal(err)
		}
		info, _ := fakeMachine{}.Info()
		if err := c.register(t.Context(), info); err != nil {
			t.Fatal(err)
		}
		got, err := client.CoreV1().Nodes().Get(t.Context(), "node1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := int64(2)
		if reset {
			want = 0
		}
		capQ, allocQ := got.Status.Capacity["example.com/resource"], got.Status.Allocatable["example.com/resource"]
		if capQ.Value() != want || allocQ.Value() != want {
			t.Errorf("reset %v: capacity %s allocatable %s, want %d", reset, capQ.String(), allocQ.String(), want)
		}
		if cpu := got.Status.Capacity[v1.ResourceCPU]; cpu.Value() != 2 {
			t.Errorf("reset %v: cpu capacity %s, want it untouched", reset, cpu.String())
		}
	}
}
