package pods

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/kubelet/podstatus"
	"github.com/berthnode/berth/kubelet/staticpods"
)

const nodeUID = types.UID("node-uid-1")

func testNodeObject() *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, UID: nodeUID}}
}

// withStaticPods gives the harness a manifest directory, read every second.
func (h *harness) withStaticPods() string {
	h.t.Helper()
	dir := h.t.TempDir()
	h.cfg.StaticPods = h.newStaticSource(dir)
	return dir
}

func (h *harness) newStaticSource(dir string) *staticpods.Source {
	h.t.Helper()
	src, err := staticpods.New(staticpods.Config{Dir: dir, NodeName: testNode, Period: time.Second, Clock: h.clock})
	if err != nil {
		h.t.Fatal(err)
	}
	return src
}

func writeManifest(t *testing.T, dir, file, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func staticManifest(name, image string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  namespace: default\n" +
		"spec:\n  terminationGracePeriodSeconds: 5\n  containers:\n  - name: app\n    image: " + image + "\n"
}

// mirrorHash is the static pod version the named mirror pod shows; "" when
// there is no mirror pod.
func (h *harness) mirrorHash(name string) string {
	if p := h.pod(name); p != nil {
		return p.Annotations[v1.MirrorPodAnnotationKey]
	}
	return ""
}

func TestStaticPodLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testNodeObject())
	dir := h.withStaticPods()
	writeManifest(t, dir, "web.yaml", staticManifest("web", "registry.example/web:1.0"))
	writeManifest(t, dir, "broken.yaml", "kind: [")
	writeManifest(t, dir, "empty.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: empty\nspec: {}\n")
	h.start()
	const name = "web-node-1"
	h.waitFor("static pod running", func() bool { return h.running(name, "app") })

	mirror := h.pod(name)
	uid := mirror.Annotations[staticpods.AnnotationHash]
	if uid == "" || mirror.Annotations[v1.MirrorPodAnnotationKey] != uid ||
		mirror.Annotations[staticpods.AnnotationSource] != staticpods.SourceFile || mirror.UID == types.UID(uid) {
		t.Errorf("mirror pod UID %s annotations %v", mirror.UID, mirror.Annotations)
	}
	wantOwners := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: testNode, UID: nodeUID, Controller: ptr.To(true)}}
	if diff := cmp.Diff(wantOwners, mirror.OwnerReferences); diff != "" {
		t.Errorf("mirror pod owners (-want +got):\n%s", diff)
	}
	if sb := h.rt.SandboxConfigs(); len(sb) != 1 || sb[0].Metadata.Uid != uid || sb[0].Metadata.Name != name {
		t.Errorf("sandboxes %v, want the static pod's only", sb)
	}
	if c := podstatus.FindCondition(mirror.Status.Conditions, v1.PodScheduled); mirror.Status.Phase != v1.PodRunning || c == nil || c.Status != v1.ConditionTrue {
		t.Errorf("mirror status phase %s, PodScheduled %+v", mirror.Status.Phase, c)
	}

	// A mirror pod deleted by someone comes back; the static pod runs on.
	appID := h.containerID(name, "app")
	if err := h.client.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("mirror pod recreated", func() bool {
		p := h.pod(name)
		return p != nil && p.UID != mirror.UID && h.running(name, "app")
	})
	if got := h.containerID(name, "app"); got != appID {
		t.Errorf("container %s replaced by %s when the mirror pod was deleted", appID, got)
	}

	// A changed manifest replaces the pod: the old version stops first.
	h.rt.ResetOrder()
	writeManifest(t, dir, "web.yaml", staticManifest("web", "registry.example/web:2.0"))
	h.waitFor("new version running", func() bool {
		return h.mirrorHash(name) != uid && h.running(name, "app") && h.status(name, "app").Image == "registry.example/web:2.0"
	})
	want := []string{"stop:app", "stopSandbox", "remove:app", "removeSandbox", "runSandbox", "create:app", "start:app"}
	if diff := cmp.Diff(want, h.rt.Order()); diff != "" {
		t.Errorf("runtime calls of the replacement (-want +got):\n%s", diff)
	}
	if got, _ := h.rt.StopTimeout(appID); got != 5 {
		t.Errorf("old version stopped with grace %d, want its 5 s", got)
	}

	// A removed manifest stops the pod and deletes its mirror pod.
	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("pod stopped and mirror pod gone", func() bool { return h.pod(name) == nil && h.count(name, "app") == 0 })
	for _, sb := range h.rt.SandboxConfigs() {
		if sb.Metadata.Name != name {
			t.Errorf("a bad manifest ran: sandbox %s", sb.Metadata.Name)
		}
	}
}

// TestStaticPodAdoptedAfterRestart: the same manifest is the same pod after
// a restart; its containers and mirror pod are kept.
func TestStaticPodAdoptedAfterRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testNodeObject())
	dir := h.withStaticPods()
	writeManifest(t, dir, "web.yaml", staticManifest("web", "registry.example/web:1.0"))
	h.start()
	const name = "web-node-1"
	h.waitFor("static pod running", func() bool { return h.running(name, "app") })
	mirror := h.pod(name)
	appID := h.containerID(name, "app")
	h.stop()

	before := h.calls("ContainerStatus")
	h.rt.ResetOrder()
	h.cfg.StaticPods = h.newStaticSource(dir)
	h.start()
	h.waitFor("second manager synced the static pod", func() bool { return h.calls("ContainerStatus") > before })
	h.clock.Step(5 * time.Second)
	h.settle(func() bool { return false })
	if got := h.rt.Order(); len(got) != 0 {
		t.Errorf("second manager changed the runtime: %v", got)
	}
	if p := h.pod(name); p == nil || p.UID != mirror.UID || p.Status.StartTime == nil || !p.Status.StartTime.Equal(mirror.Status.StartTime) {
		t.Errorf("mirror pod after restart %+v, want the same as before", p)
	}
	if got := h.containerID(name, "app"); got != appID || !h.running(name, "app") {
		t.Errorf("container after restart %s (running %v), want %s", got, h.running(name, "app"), appID)
	}
}

// TestStaticPodRemovedWhileDown: what a removed manifest left behind,
// containers and mirror pod, goes once the new manager has read the
// manifests.
func TestStaticPodRemovedWhileDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testNodeObject())
	dir := h.withStaticPods()
	writeManifest(t, dir, "web.yaml", staticManifest("web", "registry.example/web:1.0"))
	h.start()
	const name = "web-node-1"
	h.waitFor("static pod running", func() bool { return h.running(name, "app") })
	h.stop()

	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	h.cfg.StaticPods = h.newStaticSource(dir)
	h.start()
	h.waitFor("containers and mirror pod removed", func() bool { return h.count(name, "app") == 0 && h.pod(name) == nil })
}

// TestMirrorPodsAreNotRun: a mirror pod in the API is a static pod's
// shadow, never a pod to run; without its static pod it is deleted.
func TestMirrorPodsAreNotRun(t *testing.T) {
	t.Parallel()
	mirror := testPod("ghost-node-1", ctr("app"))
	mirror.UID = "api-ghost"
	mirror.Annotations = map[string]string{v1.MirrorPodAnnotationKey: "0123", staticpods.AnnotationSource: staticpods.SourceFile}
	h := newHarness(t, testNodeObject(), mirror)
	h.start()
	h.create(testPod("real", ctr("app")))
	h.waitFor("mirror pod deleted", func() bool { return h.pod("ghost-node-1") == nil })
	h.waitFor("real pod running", func() bool { return h.running("real", "app") })
	if h.sandboxesOf("ghost-node-1") != 0 {
		t.Error("the mirror pod was run")
	}
}
