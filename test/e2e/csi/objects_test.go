package csi

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
)

// ensureCSIDriver creates the CSIDriver object of d once.
func ensureCSIDriver(t testing.TB, client kubernetes.Interface, d mockDriver) {
	t.Helper()
	obj := &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: d.name},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired: ptr.To(d.attachRequired),
			PodInfoOnMount: ptr.To(true),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{
				storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral,
			},
		},
	}
	_, err := client.StorageV1().CSIDrivers().Create(t.Context(), obj, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// staticClaim creates a PersistentVolume of driver d with handle and a
// claim "data-<handle>" in ns bound to it, and waits until it is bound. It
// returns the PV's name.
func staticClaim(t testing.TB, client kubernetes.Interface, ns string, d mockDriver, handle string, mutate ...func(*v1.PersistentVolume)) (pvName, claim string) {
	t.Helper()
	ctx := t.Context()
	pvName, claim = fmt.Sprintf("%s-%s-%s", ns, strings.Split(d.name, ".")[0], handle), "data-"+handle
	size := resource.MustParse("1Gi")
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      v1.ResourceList{v1.ResourceStorage: size},
			AccessModes:                   []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: v1.PersistentVolumeReclaimRetain,
			StorageClassName:              "csimock",
			ClaimRef:                      &v1.ObjectReference{Namespace: ns, Name: claim},
			PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{
				Driver: d.name, VolumeHandle: handle,
			}},
		},
	}
	for _, f := range mutate {
		f(pv)
	}
	if _, err := client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.CoreV1().PersistentVolumes().Delete(context.Background(), pvName, metav1.DeleteOptions{})
	})
	pvc := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claim},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			StorageClassName: ptr.To("csimock"),
			VolumeName:       pvName,
			VolumeMode:       pv.Spec.VolumeMode,
			Resources:        v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: size}},
		},
	}
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.Poll(t, time.Minute, "claim "+claim+" bound", func() (bool, string) {
		got, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return got.Status.Phase == v1.ClaimBound, string(got.Status.Phase)
	})
	return pvName, claim
}

// writerPod returns a pod on node that appends a line to /data/log on the
// claim, prints the file and sleeps.
func writerPod(name, node, claim string) *v1.Pod {
	script := fmt.Sprintf("echo written-by-%s >> /data/log && cat /data/log && exec sleep 3600", name)
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []v1.Container{{
				Name: "main", Image: images.BusyboxRef, Command: []string{"sh", "-c", script},
				VolumeMounts: []v1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{
				PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
			}}},
		},
	}
}

// plainPod returns a pod on node without volumes.
func plainPod(name, node string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []v1.Container{{Name: "main", Image: images.BusyboxRef, Command: []string{"sleep", "3600"}}},
		},
	}
}

// createPod creates pod in ns and returns it.
func createPod(t testing.TB, client kubernetes.Interface, ns string, pod *v1.Pod) *v1.Pod {
	t.Helper()
	created, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created
}

// deletePod deletes a pod and waits until it is gone.
func deletePod(t testing.TB, client kubernetes.Interface, ns, name string, timeout time.Duration) {
	t.Helper()
	if err := client.CoreV1().Pods(ns).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.Poll(t, timeout, "pod "+name+" gone", func() (bool, string) {
		p, err := client.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, cluster.Describe(p)
	})
}

// podLog returns the pod's main container's log.
func podLog(t testing.TB, client kubernetes.Interface, ns, name string) string {
	t.Helper()
	b, err := client.CoreV1().Pods(ns).GetLogs(name, &v1.PodLogOptions{Container: "main"}).DoRaw(t.Context())
	if err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	return string(b)
}

// waitEvent waits for an Event about the pod with reason whose message
// contains every one of subs, and returns the message.
func waitEvent(t testing.TB, client kubernetes.Interface, ns, pod, reason string, timeout time.Duration, subs ...string) string {
	t.Helper()
	var msg string
	cluster.Poll(t, timeout, fmt.Sprintf("%s Event of pod %s containing %q", reason, pod, subs), func() (bool, string) {
		list, err := client.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + pod + ",reason=" + reason,
		})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(e.Message, s)
			}
			if ok {
				msg = e.Message
				return true, ""
			}
			seen = append(seen, e.Message)
		}
		return false, fmt.Sprintf("events: %q", seen)
	})
	return msg
}
