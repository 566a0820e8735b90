package podresources

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
	"k8s.io/utils/ptr"
)

type fakePods []*v1.Pod

func (f fakePods) Pods() []*v1.Pod { return f }

type fakeDevices struct {
	pods        map[types.UID]map[string]map[string][]string
	allocatable map[string][]*pluginapi.Device
}

func (f fakeDevices) PodDevices(uid types.UID) map[string]map[string][]string { return f.pods[uid] }
func (f fakeDevices) AllocatableDevices() map[string][]*pluginapi.Device      { return f.allocatable }

func TestServerOverSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "pr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// A socket left by an earlier run is replaced.
	if err := os.WriteFile(dir+"/"+SocketName, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	gpu := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gpu", Namespace: "ml", UID: "u1"}, Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "setup"}, {Name: "sidecar", RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways)}},
		Containers:     []v1.Container{{Name: "train"}},
	}}
	done := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "done", Namespace: "ml", UID: "u2"}, Status: v1.PodStatus{Phase: v1.PodSucceeded},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c"}}}}
	s, err := New(Config{Dir: dir, Pods: fakePods{gpu, done}, Devices: fakeDevices{
		pods: map[types.UID]map[string]map[string][]string{"u1": {"train": {"example.com/resource": {"Dev-1"}}}},
		allocatable: map[string][]*pluginapi.Device{"example.com/resource": {
			{ID: "Dev-1", Health: pluginapi.Healthy, Topology: &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: 0}}}},
			{ID: "Dev-2", Health: pluginapi.Healthy},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	conn, err := grpc.NewClient("unix:"+s.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := podresourcesapi.NewPodResourcesListerClient(conn)
	callCtx, callCancel := context.WithTimeout(ctx, 10*time.Second)
	defer callCancel()

	list, err := client.List(callCtx, &podresourcesapi.ListPodResourcesRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	wantGPU := &podresourcesapi.PodResources{Name: "gpu", Namespace: "ml", Containers: []*podresourcesapi.ContainerResources{
		{Name: "sidecar"},
		{Name: "train", Devices: []*podresourcesapi.ContainerDevices{{ResourceName: "example.com/resource", DeviceIds: []string{"Dev-1"}}}},
	}}
	want := &podresourcesapi.ListPodResourcesResponse{PodResources: []*podresourcesapi.PodResources{wantGPU}}
	if diff := cmp.Diff(want, list, protocmp.Transform()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}

	got, err := client.Get(callCtx, &podresourcesapi.GetPodResourcesRequest{PodName: "gpu", PodNamespace: "ml"})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if diff := cmp.Diff(wantGPU, got.PodResources, protocmp.Transform()); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	if _, err := client.Get(callCtx, &podresourcesapi.GetPodResourcesRequest{PodName: "nope", PodNamespace: "ml"}); err == nil || !strings.Contains(err.Error(), "pod nope in namespace ml not found") {
		t.Errorf("Get of a missing pod: %v", err)
	}

	alloc, err := client.GetAllocatableResources(callCtx, &podresourcesapi.AllocatableResourcesRequest{})
	if err != nil {
		t.Fatalf("GetAllocatableResources: %v", err)
	}
	wantAlloc := &podresourcesapi.AllocatableResourcesResponse{Devices: []*podresourcesapi.ContainerDevices{
		{ResourceName: "example.com/resource", DeviceIds: []string{"Dev-1"}, Topology: &podresourcesapi.TopologyInfo{Nodes: []*podresourcesapi.NUMANode{{ID: 0}}}},
		{ResourceName: "example.com/resource", DeviceIds: []string{"Dev-2"}},
	}}
	if diff := cmp.Diff(wantAlloc, alloc, protocmp.Transform()); diff != "" {
		t.Errorf("GetAllocatableResources (-want +got):\n%s", diff)
	}

	// Beyond the kubelet's rate limit, calls are refused.
	limited := 0
	for range 3 * Burst {
		if _, err := client.List(callCtx, &podresourcesapi.ListPodResourcesRequest{}); status.Code(err) == codes.ResourceExhausted {
			limited++
		}
	}
	if limited == 0 {
		t.Errorf("%d calls at once: none refused by the rate limit (burst %d)", 3*Burst, Burst)
	}
}
