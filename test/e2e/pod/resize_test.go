package pod

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestResizeInPlace resizes a running pod's CPU and memory up through the
// resize subresource (a patch) and back down (an update): the status shows
// the new resources, the containers' cgroups (read inside them, as the
// upstream conformance test does) hold the new values, the container whose
// policy allows it keeps running, and the one whose memory policy is
// RestartContainer is restarted once per memory change.
func TestResizeInPlace(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	small := resources("100m", "200m", "32Mi", "64Mi")
	large := resources("300m", "400m", "64Mi", "128Mi")
	pod := busybox("resized", "while true; do sleep 1; done")
	pod.Spec.Containers = []v1.Container{
		resizable("inplace", small, v1.NotRequired),
		resizable("restarts", small, v1.RestartContainer),
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := cluster.WaitPod(t, client, ns, "resized", time.Minute, cluster.PodReady)
	checkResized(t, p, map[string]v1.ResourceRequirements{"inplace": small, "restarts": small}, map[string]int32{"inplace": 0, "restarts": 0})
	checkCgroup(t, ns, "resized", "inplace", small)

	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"containers": []any{
		map[string]any{"name": "inplace", "resources": large},
		map[string]any{"name": "restarts", "resources": large},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	patched, err := client.CoreV1().Pods(ns).Patch(ctx, "resized", types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "resize")
	if err != nil {
		t.Fatalf("resize up: %v", err)
	}
	p = waitResized(t, client, ns, "resized", patched.Generation)
	checkResized(t, p, map[string]v1.ResourceRequirements{"inplace": large, "restarts": large}, map[string]int32{"inplace": 0, "restarts": 1})
	checkCgroup(t, ns, "resized", "inplace", large)
	checkCgroup(t, ns, "resized", "restarts", large)
	waitEvent(t, ns, "resized", "ResizeStarted", `"generation":2`)
	waitEvent(t, ns, "resized", "ResizeCompleted", `"generation":2`)

	var updated *v1.Pod
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := client.CoreV1().Pods(ns).Get(ctx, "resized", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Containers[0].Resources = small
		cur.Spec.Containers[1].Resources = small
		updated, err = client.CoreV1().Pods(ns).UpdateResize(ctx, "resized", cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("resize down: %v", err)
	}
	p = waitResized(t, client, ns, "resized", updated.Generation)
	checkResized(t, p, map[string]v1.ResourceRequirements{"inplace": small, "restarts": small}, map[string]int32{"inplace": 0, "restarts": 2})
	checkCgroup(t, ns, "resized", "inplace", small)
}

// TestResizeDeferredAndInfeasible fills the node's allocatable CPU so that
// a pod's resize does not fit: it is Deferred (PodResizePending with the
// kubelet's message, a ResizeDeferred event, the old allocation kept)
// until the pod holding the CPU is deleted, then actuated. A resize beyond
// what the node has at all is refused by the API server's
// PodResizeValidator against the allocatable berth reports.
func TestResizeDeferredAndInfeasible(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	before := resources("100m", "", "16Mi", "")
	pod := busybox("waits", "while true; do sleep 1; done")
	pod.Spec.Containers[0].Resources = before
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "waits", time.Minute, cluster.PodReady)
	allocatable, free := freeCPU(t, client)
	// Leave 150m free: the resize asks for 300m more.
	hog := busybox("hog", "while true; do sleep 1; done")
	hog.Spec.Containers[0].Resources = resources(fmt.Sprintf("%dm", free-150), "", "", "")
	if _, err := client.CoreV1().Pods(ns).Create(ctx, hog, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "hog", time.Minute, cluster.PodReady)

	after := resources("400m", "", "16Mi", "")
	patch := `{"spec":{"containers":[{"name":"main","resources":{"requests":{"cpu":"400m"}}}]}}`
	patched, err := client.CoreV1().Pods(ns).Patch(ctx, "waits", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "resize")
	if err != nil {
		t.Fatalf("resize: %v", err)
	}
	p := cluster.WaitPod(t, client, ns, "waits", time.Minute, func(p *v1.Pod) bool {
		c := condition(p, v1.PodResizePending)
		return c != nil && c.ObservedGeneration == patched.Generation && p.Status.ObservedGeneration == patched.Generation
	})
	c := condition(p, v1.PodResizePending)
	if c.Reason != v1.PodReasonDeferred || !strings.HasPrefix(c.Message, "Node didn't have enough resource: cpu, requested: 400") {
		t.Errorf("PodResizePending %s: %q; want Deferred for lack of CPU", c.Reason, c.Message)
	}
	if got := p.Status.ContainerStatuses[0].AllocatedResources.Cpu(); got.MilliValue() != 100 {
		t.Errorf("allocated CPU %s while the resize is deferred, want the old 100m", got)
	}
	waitEvent(t, ns, "waits", "ResizeDeferred", "Pod resize OutOfcpu: ")

	if err := client.CoreV1().Pods(ns).Delete(ctx, "hog", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p = waitResized(t, client, ns, "waits", patched.Generation)
	checkResized(t, p, map[string]v1.ResourceRequirements{"main": after}, map[string]int32{"main": 0})

	tooMuch := fmt.Sprintf(`{"spec":{"containers":[{"name":"main","resources":{"requests":{"cpu":"%dm"}}}]}}`, 2*allocatable)
	_, err = client.CoreV1().Pods(ns).Patch(ctx, "waits", types.StrategicMergePatchType, []byte(tooMuch), metav1.PatchOptions{}, "resize")
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "node didn't have enough allocatable resources") {
		t.Errorf("resize beyond the node's allocatable CPU gave %v, want Forbidden by the API server", err)
	}
}

// resources makes requirements; empty strings are left out.
func resources(cpuReq, cpuLim, memReq, memLim string) v1.ResourceRequirements {
	var r v1.ResourceRequirements
	set := func(list *v1.ResourceList, name v1.ResourceName, q string) {
		if q == "" {
			return
		}
		if *list == nil {
			*list = v1.ResourceList{}
		}
		(*list)[name] = resource.MustParse(q)
	}
	set(&r.Requests, v1.ResourceCPU, cpuReq)
	set(&r.Limits, v1.ResourceCPU, cpuLim)
	set(&r.Requests, v1.ResourceMemory, memReq)
	set(&r.Limits, v1.ResourceMemory, memLim)
	return r
}

// resizable is a busybox container with a memory resize policy.
func resizable(name string, r v1.ResourceRequirements, memory v1.ResourceResizeRestartPolicy) v1.Container {
	c := busybox("", "while true; do sleep 1; done").Spec.Containers[0]
	c.Name, c.Resources = name, r
	c.ResizePolicy = []v1.ContainerResizePolicy{
		{ResourceName: v1.ResourceCPU, RestartPolicy: v1.NotRequired},
		{ResourceName: v1.ResourceMemory, RestartPolicy: memory},
	}
	return c
}

// waitResized waits, as upstream's WaitForPodResizeActuation does, until
// the node observed generation gen, holds no resize condition and the pod
// is ready.
func waitResized(t *testing.T, client kubernetes.Interface, ns, name string, gen int64) *v1.Pod {
	t.Helper()
	return cluster.WaitPod(t, client, ns, name, 2*time.Minute, func(p *v1.Pod) bool {
		return p.Status.ObservedGeneration >= gen && condition(p, v1.PodResizePending) == nil &&
			condition(p, v1.PodResizeInProgress) == nil && cluster.PodReady(p)
	})
}

// checkResized compares the containers' status resources, allocated
// resources and restart counts with what is expected.
func checkResized(t *testing.T, p *v1.Pod, want map[string]v1.ResourceRequirements, restarts map[string]int32) {
	t.Helper()
	for _, cs := range p.Status.ContainerStatuses {
		w := want[cs.Name]
		if cs.Resources == nil || !apiequality.Semantic.DeepEqual(*cs.Resources, w) {
			t.Errorf("container %s: status resources %v, want %v", cs.Name, cs.Resources, w)
		}
		if !apiequality.Semantic.DeepEqual(cs.AllocatedResources, w.Requests) {
			t.Errorf("container %s: allocated resources %v, want %v", cs.Name, cs.AllocatedResources, w.Requests)
		}
		if cs.RestartCount != restarts[cs.Name] {
			t.Errorf("container %s: %d restarts, want %d", cs.Name, cs.RestartCount, restarts[cs.Name])
		}
	}
}

// checkCgroup reads the container's CPU quota, CPU shares (weight) and
// memory limit inside it and compares them with what r asks for.
func checkCgroup(t *testing.T, ns, pod, container string, r v1.ResourceRequirements) {
	t.Helper()
	script := `if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  echo v2 $(cut -d' ' -f1 /sys/fs/cgroup/cpu.max) $(cat /sys/fs/cgroup/cpu.weight) $(cat /sys/fs/cgroup/memory.max)
else
  echo v1 $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.shares) $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
fi`
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := bed.Kubectl(ctx, "exec", "-n", ns, pod, "-c", container, "--", "sh", "-c", script)
	if err != nil {
		t.Fatalf("read cgroup of %s: %v", container, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 4 {
		t.Fatalf("cgroup of %s: %q", container, out)
	}
	quota := r.Limits.Cpu().MilliValue() * 100 // at the default 100 ms period
	shares := max(r.Requests.Cpu().MilliValue()*1024/1000, 2)
	weight := 1 + ((shares-2)*9999)/262142
	mem := strconv.FormatInt(r.Limits.Memory().Value(), 10)
	want := []string{"v1", strconv.FormatInt(quota, 10), strconv.FormatInt(shares, 10), mem}
	if f[0] == "v2" {
		want = []string{"v2", strconv.FormatInt(quota, 10), strconv.FormatInt(weight, 10), mem}
	}
	if strings.Join(f, " ") != strings.Join(want, " ") {
		t.Errorf("container %s cgroup (version, CPU quota, shares or weight, memory limit) = %v, want %v", container, f, want)
	}
}

// condition returns the pod's condition of type ct, or nil.
func condition(p *v1.Pod, ct v1.PodConditionType) *v1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == ct {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// freeCPU returns the node's allocatable CPU and what of it the node's
// running pods do not request, in millicores.
func freeCPU(t *testing.T, client kubernetes.Interface) (allocatable, free int64) {
	t.Helper()
	node, err := client.CoreV1().Nodes().Get(t.Context(), bed.Nodes()[0].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := client.CoreV1().Pods("").List(t.Context(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + node.Name})
	if err != nil {
		t.Fatal(err)
	}
	allocatable = node.Status.Allocatable.Cpu().MilliValue()
	free = allocatable
	for _, p := range list.Items {
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		for _, c := range p.Spec.Containers {
			free -= c.Resources.Requests.Cpu().MilliValue()
		}
	}
	if free < 500 {
		t.Fatalf("only %dm of the node's CPU is free; the test needs 500m", free)
	}
	return allocatable, free
}
