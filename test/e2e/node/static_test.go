package node

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// TestStaticPod drops a pod manifest into the node's staticPodPath (kubeadm
// sets /etc/kubernetes/manifests): berth runs it and shows it as a mirror
// pod; removing the file removes both.
func TestStaticPod(t *testing.T) {
	testbed.Require(t, bed)
	client := adminClient(t)
	node := bed.Nodes()[1].Name
	dir, err := bed.HostPath(node, "/etc/kubernetes/manifests")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := `apiVersion: v1
kind: Pod
metadata:
  name: static-echo
  namespace: default
spec:
  containers:
  - name: echo
    image: ` + images.EchoRef + "\n"
	path := filepath.Join(dir, "static-echo.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	mirror := "static-echo-" + node
	p := waitPod(t, client, "default", mirror, time.Minute, podReady)
	if p.Annotations["kubernetes.io/config.mirror"] == "" || len(p.OwnerReferences) != 1 || p.OwnerReferences[0].Kind != "Node" {
		t.Errorf("mirror pod annotations %v owners %v: want config.mirror and the Node as owner", p.Annotations, p.OwnerReferences)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; ; attempt++ {
		_, err := client.CoreV1().Pods("default").Get(t.Context(), mirror, metav1.GetOptions{})
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mirror pod still there a minute after its manifest was removed")
		}
		pause(t.Context(), attempt)
	}
}
