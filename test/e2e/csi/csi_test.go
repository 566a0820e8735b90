package csi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestRegistration: the drivers register; the CSINode object lists them
// with their node IDs, topology keys and volume limits, owned by the Node;
// the Node has their topology labels and node IDs.
func TestRegistration(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	node := bed.Nodes()[0].Name
	var cn *storagev1.CSINode
	cluster.Poll(t, time.Minute, "CSINode with the three drivers", func() (bool, string) {
		var err error
		cn, err = client.StorageV1().CSINodes().Get(t.Context(), node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(cn.Spec.Drivers) == 3, fmt.Sprintf("%+v", cn.Spec.Drivers)
	})
	n, err := client.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cn.OwnerReferences) != 1 || cn.OwnerReferences[0].UID != n.UID {
		t.Errorf("CSINode owners %+v, want the Node (UID %s)", cn.OwnerReferences, n.UID)
	}
	ids := map[string]string{}
	if err := json.Unmarshal([]byte(n.Annotations["csi.volume.kubernetes.io/nodeid"]), &ids); err != nil {
		t.Errorf("node ID annotation %q: %v", n.Annotations["csi.volume.kubernetes.io/nodeid"], err)
	}
	for _, d := range []mockDriver{plain, attach, tokens} {
		i := slices.IndexFunc(cn.Spec.Drivers, func(e storagev1.CSINodeDriver) bool { return e.Name == d.name })
		if i < 0 {
			t.Errorf("CSINode lacks %s", d.name)
			continue
		}
		e := cn.Spec.Drivers[i]
		if e.NodeID != node || !slices.Equal(e.TopologyKeys, []string{d.topologyKey()}) || e.Allocatable == nil || *e.Allocatable.Count != 9 {
			t.Errorf("CSINode entry %+v; want node ID %s, topology key %s, allocatable 9", e, node, d.topologyKey())
		}
		if got := n.Labels[d.topologyKey()]; got != d.zone {
			t.Errorf("Node label %s = %q, want %q", d.topologyKey(), got, d.zone)
		}
		if ids[d.name] != node {
			t.Errorf("node ID annotation %v lacks %s=%s", ids, d.name, node)
		}
	}
}

// TestStaticVolume: a static CSI PV bound through a claim is staged and
// published for a pod, which writes and reads; after the pod's deletion
// the volume is unpublished and unstaged and no mount is left; a second
// pod finds the first one's data. The summary reports the volume's stats.
func TestStaticVolume(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	ensureCSIDriver(t, client, plain)
	// The node's credentials read the secrets the PV names (the Node
	// authorizer allows a node the secrets of its pods' volumes).
	for _, name := range []string{"stage-secret", "publish-secret"} {
		secret := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{"key": []byte(name)}}
		if _, err := client.CoreV1().Secrets(ns).Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pvName, claim := staticClaim(t, client, ns, plain, "1", func(pv *v1.PersistentVolume) {
		pv.Spec.CSI.NodeStageSecretRef = &v1.SecretReference{Namespace: ns, Name: "stage-secret"}
		pv.Spec.CSI.NodePublishSecretRef = &v1.SecretReference{Namespace: ns, Name: "publish-secret"}
	})
	before := len(plain.calls(t, node))

	pod := createPod(t, client, ns, writerPod("first", node, claim))
	cluster.WaitPod(t, client, ns, "first", 2*time.Minute, cluster.PodReady)
	if log := podLog(t, client, ns, "first"); !strings.Contains(log, "written-by-first") {
		t.Errorf("first pod's log %q lacks its own line", log)
	}
	calls := plain.waitCalls(t, node, before, "1", "NodeStageVolume", "NodePublishVolume")
	staging, target := stagingPath(plain.name, "1"), publishPath(string(pod.UID), pvName)
	if calls[0].Staging != staging || calls[1].Staging != staging || calls[1].Target != target {
		t.Errorf("calls %+v; want staging %s, target %s", calls, staging, target)
	}
	var data map[string]string
	if b, err := os.ReadFile(hostPath(t, node, filepath.Join(filepath.Dir(target), "vol_data.json"))); err != nil || json.Unmarshal(b, &data) != nil {
		t.Errorf("vol_data.json: %s, %v", b, err)
	} else if data["driverName"] != plain.name || data["volumeHandle"] != "1" || data["specVolID"] != pvName || data["volumeLifecycleMode"] != "Persistent" {
		t.Errorf("vol_data.json = %v", data)
	}
	checkVolumeStats(t, client, node, ns, "first", claim)
	checkVolumeMetrics(t, client, node, ns, claim)

	deletePod(t, client, ns, "first", time.Minute)
	plain.waitCalls(t, node, before, "1", "NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume")
	if m := kubeletMounts(t, node, string(pod.UID), "kubernetes.io/csi"); len(m) > 0 {
		t.Errorf("mounts left after the pod's deletion: %v", m)
	}
	if _, err := os.Stat(hostPath(t, node, filepath.Dir(staging))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("staging directory left: %v", err)
	}

	createPod(t, client, ns, writerPod("second", node, claim))
	cluster.WaitPod(t, client, ns, "second", 2*time.Minute, cluster.PodReady)
	if log := podLog(t, client, ns, "second"); !strings.Contains(log, "written-by-first") || !strings.Contains(log, "written-by-second") {
		t.Errorf("second pod's log %q: want the first pod's line and its own", log)
	}
	deletePod(t, client, ns, "second", time.Minute)
}

// checkVolumeStats checks that the node's summary reports the claim's
// volume for pod.
func checkVolumeStats(t *testing.T, client kubernetes.Interface, node, ns, pod, claim string) {
	t.Helper()
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy/stats/summary").DoRaw(t.Context())
	if err != nil {
		t.Errorf("stats summary: %v", err)
		return
	}
	var s statsapi.Summary
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Pods {
		if p.PodRef.Namespace != ns || p.PodRef.Name != pod {
			continue
		}
		for _, v := range p.VolumeStats {
			if v.Name == "data" && v.PVCRef != nil && v.PVCRef.Name == claim && v.CapacityBytes != nil {
				t.Logf("volume stats of %s: capacity %d, used %d", claim, *v.CapacityBytes, *v.UsedBytes)
				return
			}
		}
		t.Errorf("summary's volume stats of %s: %+v; want claim %s's", pod, p.VolumeStats, claim)
		return
	}
	t.Errorf("summary has no pod %s/%s", ns, pod)
}

// checkVolumeMetrics checks that the node's /metrics has the claim's
// kubelet_volume_stats_* samples.
func checkVolumeMetrics(t *testing.T, client kubernetes.Interface, node, ns, claim string) {
	t.Helper()
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy/metrics").DoRaw(t.Context())
	if err != nil {
		t.Errorf("metrics: %v", err)
		return
	}
	labels := fmt.Sprintf(`{namespace=%q,persistentvolumeclaim=%q}`, ns, claim)
	for _, name := range []string{"kubelet_volume_stats_capacity_bytes", "kubelet_volume_stats_used_bytes", "kubelet_volume_stats_inodes_free"} {
		if !strings.Contains(string(raw), name+labels) {
			t.Errorf("/metrics lacks %s%s", name, labels)
		}
	}
}

// TestInlineVolume: a CSI inline ephemeral volume is published (not
// staged) with the kubelet's volume ID and pod info, and unpublished after
// the pod.
func TestInlineVolume(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	ensureCSIDriver(t, client, plain)
	pod := writerPod("inline", node, "")
	pod.Spec.Volumes[0].VolumeSource = v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: plain.name}}
	before := len(plain.calls(t, node))
	pod = createPod(t, client, ns, pod)
	cluster.WaitPod(t, client, ns, "inline", 2*time.Minute, cluster.PodReady)
	if log := podLog(t, client, ns, "inline"); !strings.Contains(log, "written-by-inline") {
		t.Errorf("log %q lacks the pod's line", log)
	}
	handle := fmt.Sprintf("csi-%x", sha256.Sum256([]byte(string(pod.UID)+"data")))
	calls := plain.waitCalls(t, node, before, handle, "NodePublishVolume")
	if calls[0].Staging != "" || calls[0].Target != publishPath(string(pod.UID), "data") {
		t.Errorf("NodePublishVolume %+v; want no staging, target %s", calls[0], publishPath(string(pod.UID), "data"))
	}
	deletePod(t, client, ns, "inline", time.Minute)
	plain.waitCalls(t, node, before, handle, "NodePublishVolume", "NodeUnpublishVolume")
	if m := kubeletMounts(t, node, string(pod.UID)); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
}

// TestBlockVolume: a volumeMode Block PV is staged and published at the
// kubelet's volumeDevices paths, and unpublished and unstaged after the
// pod. (csimock publishes a directory, not a device: the container cannot
// start, which the test does not need.)
func TestBlockVolume(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	ensureCSIDriver(t, client, plain)
	block := v1.PersistentVolumeBlock
	pvName, claim := staticClaim(t, client, ns, plain, "6", func(pv *v1.PersistentVolume) { pv.Spec.VolumeMode = &block })
	before := len(plain.calls(t, node))
	pod := writerPod("block", node, claim)
	pod.Spec.Containers[0].VolumeMounts = nil
	pod.Spec.Containers[0].VolumeDevices = []v1.VolumeDevice{{Name: "data", DevicePath: "/dev/xvda"}}
	pod.Spec.Containers[0].Command = []string{"sleep", "3600"}
	pod = createPod(t, client, ns, pod)
	calls := plain.waitCalls(t, node, before, "6", "NodeStageVolume", "NodePublishVolume")
	devices := "/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/"
	if calls[0].Staging != devices+"staging/"+pvName || calls[1].Target != devices+"publish/"+pvName+"/"+string(pod.UID) {
		t.Errorf("calls %+v; want staging %s, target %s", calls, devices+"staging/"+pvName, devices+"publish/"+pvName+"/"+string(pod.UID))
	}
	var data map[string]string
	if b, err := os.ReadFile(hostPath(t, node, devices+pvName+"/data/vol_data.json")); err != nil || json.Unmarshal(b, &data) != nil {
		t.Errorf("vol_data.json: %s, %v", b, err)
	} else if data["volumeHandle"] != "6" || data["specVolID"] != pvName {
		t.Errorf("vol_data.json = %v", data)
	}
	deletePod(t, client, ns, "block", time.Minute)
	plain.waitCalls(t, node, before, "6", "NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume")
	for _, p := range []string{devices + pvName, devices + "staging/" + pvName, devices + "publish/" + pvName} {
		if _, err := os.Stat(hostPath(t, node, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}

// TestTokenRequests: a CSIDriver with tokenRequests and requiresRepublish:
// berth gets the pod's service account token with the node's credentials
// (the pod starts only once NodePublishVolume had it), and publishes again
// later to renew it.
func TestTokenRequests(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	obj := &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: tokens.name},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired: ptr.To(false),
			// The mock knows an inline volume by the pod info's
			// csi.storage.k8s.io/ephemeral.
			PodInfoOnMount:       ptr.To(true),
			TokenRequests:        []storagev1.TokenRequest{{Audience: "csimock"}},
			RequiresRepublish:    ptr.To(true),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral},
		},
	}
	if _, err := client.StorageV1().CSIDrivers().Create(t.Context(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.StorageV1().CSIDrivers().Delete(context.Background(), tokens.name, metav1.DeleteOptions{})
	})
	pod := writerPod("tokens", node, "")
	pod.Spec.Volumes[0].VolumeSource = v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: tokens.name}}
	before := len(tokens.calls(t, node))
	pod = createPod(t, client, ns, pod)
	cluster.WaitPod(t, client, ns, "tokens", 2*time.Minute, cluster.PodReady)
	handle := fmt.Sprintf("csi-%x", sha256.Sum256([]byte(string(pod.UID)+"data")))
	// The pod's start syncs it several times; then the periodic sync
	// publishes again.
	settled := len(tokens.calls(t, node))
	start := time.Now()
	cluster.Poll(t, 3*time.Minute, "NodePublishVolume again", func() (bool, string) {
		all := tokens.calls(t, node)
		got := methods(volumeCalls(all[settled:], handle))
		return slices.Contains(got, "NodePublishVolume"), fmt.Sprint(methods(volumeCalls(all[before:], handle)))
	})
	t.Logf("published again %s after the pod was Ready", time.Since(start).Round(time.Second))
	deletePod(t, client, ns, "tokens", time.Minute)
}

// TestFailingAndHangingPublish: while NodePublishVolume fails, the pod
// stays ContainerCreating with a FailedMount Event naming the volume and
// another pod on the node runs; once the fault is gone, the pod starts.
// The same with a NodePublishVolume that hangs until its file is removed.
func TestFailingAndHangingPublish(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	ensureCSIDriver(t, client, plain)
	pvName, claim := staticClaim(t, client, ns, plain, "2")

	for _, kind := range []string{"fail", "hang"} {
		plain.fault(t, node, "NodePublishVolume", kind, false)
		name := "publish-" + kind
		createPod(t, client, ns, writerPod(name, node, claim))
		want := []string{pvName, "injected by"}
		if kind == "hang" {
			want = []string{pvName, "NodePublishVolume"}
		}
		msg := waitEvent(t, client, ns, name, "FailedMount", 2*time.Minute, want...)
		t.Logf("%s: FailedMount %q", kind, msg)
		other := "bystander-" + kind
		createPod(t, client, ns, plainPod(other, node))
		cluster.WaitPod(t, client, ns, other, time.Minute, cluster.PodReady)
		p, err := client.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !waitingContainerCreating(p) {
			t.Errorf("pod with the %s publish: %s; want ContainerCreating", kind, cluster.Describe(p))
		}
		plain.fault(t, node, "NodePublishVolume", kind, true)
		cluster.WaitPod(t, client, ns, name, 2*time.Minute, cluster.PodReady)
		deletePod(t, client, ns, name, time.Minute)
		deletePod(t, client, ns, other, time.Minute)
	}
	if m := kubeletMounts(t, node, "kubernetes.io/csi", "kubernetes.io~csi"); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
}

// waitingContainerCreating tells whether the pod is Pending with its
// container waiting in ContainerCreating.
func waitingContainerCreating(p *v1.Pod) bool {
	if p.Status.Phase != v1.PodPending {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" {
			return false
		}
	}
	return true
}

// TestAttachRequired: for a driver whose CSIDriver says attachRequired, the
// attach/detach controller creates the VolumeAttachment; the test, as the
// external attacher, marks it attached with the device in its metadata; the
// pod starts (csimock refuses to stage without the device), and the Node's
// volumesInUse lists the volume while it is mounted.
func TestAttachRequired(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	node := bed.Nodes()[0].Name
	ensureCSIDriver(t, client, attach)
	_, claim := staticClaim(t, client, ns, attach, "1")
	unique := v1.UniqueVolumeName("kubernetes.io/csi/" + attach.name + "^1")

	createPod(t, client, ns, writerPod("attached", node, claim))
	var va *storagev1.VolumeAttachment
	cluster.Poll(t, 2*time.Minute, "VolumeAttachment", func() (bool, string) {
		list, err := client.StorageV1().VolumeAttachments().List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		for i := range list.Items {
			if list.Items[i].Spec.Attacher == attach.name && list.Items[i].Spec.NodeName == node {
				va = &list.Items[i]
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d attachments", len(list.Items))
	})
	va.Status = storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: map[string]string{"device": "/dev/mock-1"}}
	if _, err := client.StorageV1().VolumeAttachments().UpdateStatus(t.Context(), va, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "attached", 2*time.Minute, cluster.PodReady)
	n, err := client.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(n.Status.VolumesInUse, unique) {
		t.Errorf("volumesInUse %v lacks %s", n.Status.VolumesInUse, unique)
	}
	if !slices.ContainsFunc(n.Status.VolumesAttached, func(a v1.AttachedVolume) bool { return a.Name == unique }) {
		t.Errorf("volumesAttached %v lacks %s", n.Status.VolumesAttached, unique)
	}
	deletePod(t, client, ns, "attached", time.Minute)
	cluster.Poll(t, time.Minute, "volumesInUse without "+string(unique), func() (bool, string) {
		n, err := client.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return !slices.Contains(n.Status.VolumesInUse, unique), fmt.Sprint(n.Status.VolumesInUse)
	})
	attach.waitCalls(t, node, 0, "1", "NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume")
}
