package storage

import (
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// fsGroup is the group the tests' pods get their volumes in.
const fsGroup = 4321

// statefulScript records, once, who wrote the volume first, and a line per
// start.
const statefulScript = `[ -f /data/first ] || echo "$(hostname) $(date +%s%N)" > /data/first
echo started >> /data/starts
echo started >> /logs/starts
sleep 3600`

// TestStatefulSetLocalPV: a StatefulSet's claim binds, through a
// WaitForFirstConsumer class, to a local PV of the node; the pod writes,
// its volume is a bind mount where the kubelet keeps it, a subPath mount
// reaches a directory of the PV, and the files get the pod's fsGroup. The pod deleted, its mount goes and the PV's data
// stays; the new pod finds the data on the same node.
func TestStatefulSetLocalPV(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0].Name
	class, pvName := ns+"-local", ns+"-disk1"
	disk := localDisk(t, node, pvName)
	// A file there before any pod: the fsGroup walk must reach it.
	onNode(t, node, "sh", "-c", fmt.Sprintf("echo old > %s/before && chown 0:0 %s/before && chmod 600 %s/before", disk, disk, disk))
	localStorageClass(t, client, class)
	localPV(t, client, pvName, class, node, disk, nil)

	labels := map[string]string{"app": "db"}
	_, err := client.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					// No token volume: the local volume is the pod's only mount.
					AutomountServiceAccountToken: ptr.To(false),
					SecurityContext:              &v1.PodSecurityContext{FSGroup: ptr.To[int64](fsGroup)},
					Containers: []v1.Container{{
						Name: "db", Image: images.BusyboxRef, Command: []string{"sh", "-c", statefulScript},
						VolumeMounts: []v1.VolumeMount{
							{Name: "data", MountPath: "/data"},
							{Name: "data", MountPath: "/logs", SubPath: "logs"},
						},
					}},
				},
			},
			VolumeClaimTemplates: []v1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec:       claimSpec(class),
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := cluster.WaitPod(t, client, ns, "db-0", 3*time.Minute, cluster.PodReady)
	if first.Spec.NodeName != node {
		t.Fatalf("db-0 on %s, want %s, the local PV's node", first.Spec.NodeName, node)
	}
	claim, err := client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-db-0", metav1.GetOptions{})
	if err != nil || claim.Spec.VolumeName != pvName {
		t.Fatalf("claim data-db-0 bound to %q (%v), want %s", claim.Spec.VolumeName, err, pvName)
	}

	// The kubelet's layout: a bind mount of the PV in the pod's
	// kubernetes.io~local-volume directory.
	podDir := podDirOf(string(first.UID))
	volDir := path.Join(podDir, "volumes/kubernetes.io~local-volume", pvName)
	if got := mountsBelow(t, node, podDir); len(got) != 1 || got[0] != volDir {
		t.Errorf("mounts below the pod's directory = %v, want the local volume's bind mount on %s", got, volDir)
	}
	var written string
	cluster.Poll(t, time.Minute, "the pod's first write on the PV", func() (bool, string) {
		out, err := bed.Output(ctx, node, "cat", path.Join(disk, "first"))
		written = strings.TrimSpace(string(out))
		return err == nil && strings.HasPrefix(written, "db-0 "), fmt.Sprint(written, err)
	})

	// fsGroup: the file that was there and the new ones have the group;
	// the volume's root has it with setgid.
	got := onNode(t, node, "stat", "-c", "%n %g %A", disk, path.Join(disk, "before")) +
		onNode(t, node, "stat", "-c", "%n %g", path.Join(disk, "first"))
	want := fmt.Sprintf("%s %d drwxrwsr-x\n%s/before %d -rw-rw----\n%s/first %d\n", disk, fsGroup, disk, fsGroup, disk, fsGroup)
	if got != want {
		t.Errorf("ownership on the node:\n%s\nwant:\n%s", got, want)
	}

	// A new pod, after the old one is gone: the same data.
	if err := client.CoreV1().Pods(ns).Delete(ctx, "db-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, client, ns, "db-0", string(first.UID))
	second := cluster.WaitPod(t, client, ns, "db-0", 3*time.Minute, func(p *v1.Pod) bool {
		return p.UID != first.UID && cluster.PodReady(p)
	})
	if second.Spec.NodeName != node {
		t.Errorf("new db-0 on %s, want %s", second.Spec.NodeName, node)
	}
	cluster.Poll(t, time.Minute, "the new pod's start recorded on the PV", func() (bool, string) {
		out, err := bed.Output(ctx, node, "cat", path.Join(disk, "starts"))
		return err == nil && strings.Count(string(out), "started") == 2, fmt.Sprint(string(out), err)
	})
	// The subPath mount is the PV's directory "logs".
	cluster.Poll(t, 30*time.Second, "the new pod's start recorded through the subPath mount", func() (bool, string) {
		out, err := bed.Output(ctx, node, "cat", path.Join(disk, "logs", "starts"))
		return err == nil && strings.Count(string(out), "started") == 2, fmt.Sprint(string(out), err)
	})
	if again := strings.TrimSpace(onNode(t, node, "cat", path.Join(disk, "first"))); again != written {
		t.Errorf("first write after the new pod = %q, want the old pod's %q", again, written)
	}
	// The old pod's mount and directory are gone; the PV's data stayed.
	cluster.Poll(t, time.Minute, "the old pod's directory removed", func() (bool, string) {
		out, err := bed.Output(ctx, node, "sh", "-c", "test -e "+podDir+" && echo present || echo absent")
		return err == nil && strings.TrimSpace(string(out)) == "absent", string(out)
	})
	if got := mountsBelow(t, node, podDir); len(got) != 0 {
		t.Errorf("mounts of the deleted pod left: %v", got)
	}
	if got := strings.TrimSpace(onNode(t, node, "cat", path.Join(disk, "before"))); got != "old" {
		t.Errorf("the PV's old file = %q after the pod's teardown", got)
	}
}
