package storage

import (
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// sleeper is a pod on node (bound by nodeName, past the scheduler) that
// sleeps, with volumes mounted at /<name>.
func sleeper(name, node string, volumes ...v1.Volume) *v1.Pod {
	c := v1.Container{Name: "main", Image: images.BusyboxRef, Command: []string{"sh", "-c", "date > /data/hello 2>/dev/null; sleep 3600"}}
	for _, vol := range volumes {
		c.VolumeMounts = append(c.VolumeMounts, v1.VolumeMount{Name: vol.Name, MountPath: "/" + vol.Name})
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []v1.Container{c},
			Volumes:                       volumes,
		},
	}
}

// TestClaimNeverBinds: a pod whose claim is not bound stays
// ContainerCreating with a FailedMount event naming the claim, while
// another pod of the node runs; once the claim binds, the retried setup
// starts the pod.
func TestClaimNeverBinds(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0].Name
	// A class nobody serves: nothing binds the claim.
	class := ns + "-unserved"
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "never"},
		Spec:       claimSpec(class),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	data := v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "never"}}}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, sleeper("waiting", node, data), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, sleeper("neighbour", node), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "neighbour", time.Minute, cluster.PodReady)
	want := `volume "data": persistentvolumeclaim "never" is not bound`
	cluster.Poll(t, time.Minute, "FailedMount event naming the claim", func() (bool, string) {
		msgs := events(t, client, ns, "waiting", "FailedMount")
		for _, m := range msgs {
			if strings.Contains(m, want) {
				return true, ""
			}
		}
		return false, fmt.Sprint(msgs)
	})
	if p := cluster.WaitPod(t, client, ns, "waiting", 30*time.Second, containerCreating); p.Status.ContainerStatuses[0].State.Running != nil {
		t.Errorf("pod with an unbound claim runs: %s", cluster.Describe(p))
	}

	// A PV pre-bound to the claim: the controller binds them, and the
	// pod's next setup finds the claim bound.
	pvName := ns + "-late"
	disk := localDisk(t, node, pvName)
	localPV(t, client, pvName, class, node, disk, &v1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: ns, Name: "never"})
	cluster.WaitPod(t, client, ns, "waiting", 2*time.Minute, cluster.PodReady)
	cluster.Poll(t, 30*time.Second, "the pod's write on the late PV", func() (bool, string) {
		out, err := bed.Output(ctx, node, "cat", path.Join(disk, "hello"))
		return err == nil && len(out) > 0, fmt.Sprint(string(out), err)
	})
}

// TestGenericEphemeralVolume: the ephemeral controller makes the claim
// <pod>-<volume>, owned by the pod; it binds to a local PV of the
// template's class, and the pod writes on it. A claim of that name the pod
// does not own is refused.
func TestGenericEphemeralVolume(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0].Name
	class, pvName := ns+"-local", ns+"-scratch"
	disk := localDisk(t, node, pvName)
	localStorageClass(t, client, class)
	localPV(t, client, pvName, class, node, disk, nil)

	scratch := v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{
		VolumeClaimTemplate: &v1.PersistentVolumeClaimTemplate{Spec: claimSpec(class)},
	}}}
	pod := sleeper("eph", "", scratch)
	created, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cluster.WaitPod(t, client, ns, "eph", 3*time.Minute, cluster.PodReady)
	claim, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "eph-data", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(claim, created) || claim.Spec.VolumeName != pvName {
		t.Errorf("claim eph-data: owners %v, volume %q; want the pod's, bound to %s", claim.OwnerReferences, claim.Spec.VolumeName, pvName)
	}
	cluster.Poll(t, 30*time.Second, "the pod's write on the ephemeral volume", func() (bool, string) {
		out, err := bed.Output(ctx, node, "cat", path.Join(disk, "hello"))
		return err == nil && len(out) > 0, fmt.Sprint(string(out), err)
	})

	// A claim named like the pod's ephemeral volume but made by someone
	// else: the pod must not use it.
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "stolen-data"},
		Spec:       claimSpec(class),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, sleeper("stolen", node, scratch), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("PVC %s/stolen-data was not created for pod %s/stolen (pod is not owner)", ns, ns)
	cluster.Poll(t, time.Minute, "FailedMount event refusing the foreign claim", func() (bool, string) {
		msgs := events(t, client, ns, "stolen", "FailedMount")
		for _, m := range msgs {
			if strings.Contains(m, want) {
				return true, ""
			}
		}
		return false, fmt.Sprint(msgs)
	})
	cluster.WaitPod(t, client, ns, "stolen", 10*time.Second, containerCreating)
}
