package pods

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/kubelet/podruntime/podruntimetest"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	kubeletconfigv1beta1 "k8s.io/kubelet/config/v1beta1"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

const testNode = "node-1"

// harness runs a Manager against the CRI fakes and a fake clientset.
type harness struct {
	t       *testing.T
	rt      *recordingRuntime
	images  *podruntimetest.Images
	client  *fake.Clientset
	clock   *testingclock.FakeClock
	volumes *fakeVolumes
	events  *podruntimetest.Events
	cfg     Config
	// tweak, when set, adjusts the Manager before it runs.
	tweak  func(*Manager)
	m      *Manager
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, objects ...runtime.Object) *harness {
	t.Helper()
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 192.0.2.53\nsearch example.com corp.example\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:       t,
		rt:      newRecordingRuntime(),
		images:  podruntimetest.NewImages(),
		client:  newFakeClient(objects...),
		clock:   testingclock.NewFakeClock(time.Now()),
		volumes: &fakeVolumes{root: filepath.Join(dir, "volumes"), fail: map[string]error{}, panicFor: map[string]bool{}},
		events:  &podruntimetest.Events{},
	}
	h.rt.exec = func(string, []string, time.Duration) ([]byte, []byte, error) { return nil, nil, nil }
	h.cfg = Config{
		NodeName: testNode,
		Client:   h.client,
		Runtime:  h.rt,
		Images:   h.images,
		Volumes:  h.volumes,
		Recorder: h.events,
		Kubelet: &kubeletconfigv1beta1.KubeletConfiguration{
			ClusterDNS:     []string{"10.96.0.10"},
			ClusterDomain:  "cluster.local",
			CgroupDriver:   "cgroupfs",
			CgroupRoot:     "/",
			CgroupsPerQOS:  ptr.To(true),
			ResolverConfig: ptr.To(resolv),
			MaxPods:        110,
			SyncFrequency:  metav1.Duration{Duration: time.Minute},
		},
		RootDir:             filepath.Join(dir, "kubelet"),
		PodLogsDir:          filepath.Join(dir, "pods"),
		NodeIPs:             func() []net.IP { return []net.IP{net.ParseIP("192.0.2.10")} },
		Clock:               h.clock,
		MemoryCapacityBytes: 8 << 30,
	}
	return h
}

// newFakeClient is the fake clientset that, like the API server, gives a
// pod created without a UID one of its own (mirror pods).
func newFakeClient(objects ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objects...)
	var mu sync.Mutex
	n := 0
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if p, ok := a.(k8stesting.CreateAction).GetObject().(*v1.Pod); ok && p.UID == "" {
			mu.Lock()
			n++
			p.UID = types.UID(fmt.Sprintf("api-%s-%d", p.Name, n))
			mu.Unlock()
		}
		return false, nil, nil
	})
	return c
}

// start runs a new Manager until the test ends or stop is called.
func (h *harness) start() {
	h.t.Helper()
	m, err := New(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if h.tweak != nil {
		h.tweak(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.m, h.cancel, h.done = m, cancel, make(chan error, 1)
	go func() { h.done <- m.Run(ctx) }()
	h.t.Cleanup(h.stop)
	h.waitFor("manager healthy", func() bool { return m.Healthy() == nil })
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run returned %v", err)
	}
	h.cancel = nil
}

// waitFor polls cond for up to 5 s of real time, moving the fake clock 100 ms
// every few polls so that relists happen.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		if i%2 == 1 {
			h.clock.Step(100 * time.Millisecond)
		}
		time.Sleep(time.Millisecond)
	}
}

// settle waits for pending work without moving the clock: true once cond
// holds, false after a short real-time wait.
func (h *harness) settle(cond func() bool) bool {
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return cond()
}

func (h *harness) pod(name string) *v1.Pod {
	p, err := h.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return p
}

func (h *harness) create(p *v1.Pod) {
	h.t.Helper()
	if _, err := h.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

// status returns the status of the container named name of pod.
func (h *harness) status(pod, name string) v1.ContainerStatus {
	p := h.pod(pod)
	if p == nil {
		return v1.ContainerStatus{}
	}
	for _, list := range [][]v1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			if s.Name == name {
				return s
			}
		}
	}
	return v1.ContainerStatus{}
}

func (h *harness) running(pod, name string) bool {
	return h.status(pod, name).State.Running != nil
}

func (h *harness) waitingReason(pod, name string) string {
	if w := h.status(pod, name).State.Waiting; w != nil {
		return w.Reason
	}
	return ""
}

// containerID returns the ID of the newest container named name of pod.
func (h *harness) containerID(pod, name string) string {
	h.rt.Lock()
	defer h.rt.Unlock()
	var best *critest.FakeContainer
	for _, c := range h.rt.Containers {
		if c.Labels[cri.LabelPodName] == pod && c.Metadata.Name == name &&
			(best == nil || c.Metadata.Attempt > best.Metadata.Attempt) {
			best = c
		}
	}
	if best == nil {
		return ""
	}
	return best.Id
}

// exit makes a container exit with code at the fake clock's time.
func (h *harness) exit(id string, code int32) {
	h.t.Helper()
	h.rt.Lock()
	defer h.rt.Unlock()
	c, ok := h.rt.Containers[id]
	if !ok {
		h.t.Fatalf("no container %s", id)
	}
	c.State = runtimeapi.ContainerState_CONTAINER_EXITED
	c.ExitCode = code
	c.FinishedAt = h.clock.Now().UnixNano()
}

// count returns how many containers named name of pod the runtime holds.
func (h *harness) count(pod, name string) int {
	h.rt.Lock()
	defer h.rt.Unlock()
	n := 0
	for _, c := range h.rt.Containers {
		if c.Labels[cri.LabelPodName] == pod && c.Metadata.Name == name {
			n++
		}
	}
	return n
}

func (h *harness) calls(name string) int {
	n := 0
	for _, c := range h.rt.GetCalls() {
		if c == name {
			n++
		}
	}
	return n
}

func testPod(name string, containers ...v1.Container) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "default", UID: types.UID("uid-" + name),
			Labels: map[string]string{"app": name},
		},
		Spec: v1.PodSpec{
			NodeName:      testNode,
			RestartPolicy: v1.RestartPolicyAlways,
			Containers:    containers,
		},
		Status: v1.PodStatus{
			Phase:      v1.PodPending,
			Conditions: []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue}},
		},
	}
}

func ctr(name string) v1.Container {
	return v1.Container{
		Name: name, Image: "registry.example/" + name + ":1.0", ImagePullPolicy: v1.PullIfNotPresent,
		TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: v1.TerminationMessageReadFile,
	}
}

var errBoom = errors.New("boom")
