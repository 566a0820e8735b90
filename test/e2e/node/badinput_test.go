package node

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// TestBadPodsDoNotHurtOthers creates pods that cannot run — an image no
// registry has, a command that does not exist, a security context the image
// cannot meet, an unsupported volume — next to a good pod on the same node:
// each bad pod shows a clear reason and an Event, the good one runs.
func TestBadPodsDoNotHurtOthers(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	ns := testNamespace(t, client)
	ctx := t.Context()
	node := bed.Nodes()[0].Name
	pod := func(name string, mutate func(*v1.Pod)) *v1.Pod {
		p := busyboxPod(name, node, v1.RestartPolicyAlways, "sleep 3600")
		mutate(p)
		return p
	}
	bad := []struct {
		pod         *v1.Pod
		reasons     []string // waiting reasons that are acceptable
		eventReason string
	}{
		{pod("no-such-image", func(p *v1.Pod) { p.Spec.Containers[0].Image = "registry.invalid/nothing:v1" }),
			[]string{"ErrImagePull", "ImagePullBackOff"}, "Failed"},
		{pod("no-such-command", func(p *v1.Pod) { p.Spec.Containers[0].Command = []string{"/does/not/exist"} }),
			[]string{"RunContainerError", "CrashLoopBackOff", "StartError", "CreateContainerError"}, "Failed"},
		{pod("must-not-be-root", func(p *v1.Pod) {
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{RunAsNonRoot: ptr.To(true)}
		}), []string{"CreateContainerConfigError"}, "Failed"},
		{pod("nfs-volume", func(p *v1.Pod) {
			p.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{NFS: &v1.NFSVolumeSource{Server: "192.0.2.1", Path: "/x"}}}}
			p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}), []string{"ContainerCreating"}, "FailedMount"},
	}
	for _, b := range bad {
		if _, err := client.CoreV1().Pods(ns).Create(ctx, b.pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	good := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "good"},
		Spec:       v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "echo", Image: images.EchoRef}}},
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, good, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, client, ns, "good", time.Minute, podReady)

	for _, b := range bad {
		t.Run(b.pod.Name, func(t *testing.T) {
			waitPod(t, client, ns, b.pod.Name, time.Minute, func(p *v1.Pod) bool {
				if len(p.Status.ContainerStatuses) == 0 {
					return false
				}
				w := p.Status.ContainerStatuses[0].State.Waiting
				return w != nil && contains(b.reasons, w.Reason) && (w.Reason == "ContainerCreating" || w.Message != "")
			})
			waitEvent(t, client, ns, b.pod.Name, b.eventReason)
		})
	}
}

// waitEvent waits for an Event with reason about the named pod.
func waitEvent(t *testing.T, client kubernetes.Interface, ns, pod, reason string) {
	t.Helper()
	ctx := t.Context()
	deadline := time.Now().Add(time.Minute)
	selector := fields.Set{"involvedObject.name": pod, "reason": reason}.AsSelector().String()
	for attempt := 0; ; attempt++ {
		list, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err == nil && len(list.Items) > 0 {
			e := list.Items[0]
			if e.Source.Component != "kubelet" || e.Source.Host == "" || strings.TrimSpace(e.Message) == "" {
				t.Errorf("event %s: source %+v message %q; want from kubelet on the node, with a message", reason, e.Source, e.Message)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for pod %s within 1m (err %v)", reason, pod, err)
		}
		pause(ctx, attempt)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
