package foundation

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berthnode/berth/test/testbed"
)

func TestAPIServerReady(t *testing.T) {
	testbed.Require(t, bed)
	ctx := t.Context()
	client, err := bed.Client(testbed.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil || string(body) != "ok" {
		t.Fatalf("GET /readyz = %q, %v; want ok", body, err)
	}
	v, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != testbed.KubernetesVersion {
		t.Errorf("apiserver version %s, want %s", v.GitVersion, testbed.KubernetesVersion)
	}
}

// TestKubectlAdmin runs the upstream kubectl on the control-plane host with
// the admin kubeconfig kubeadm wrote, as an operator would.
func TestKubectlAdmin(t *testing.T) {
	testbed.Require(t, bed)
	out, err := bed.Kubectl(t.Context(), "get", "ns", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"namespace/default", "namespace/kube-system", "namespace/kube-public", "namespace/kube-node-lease"} {
		if !strings.Contains(string(out), ns+"\n") {
			t.Errorf("kubectl get ns: %s missing from\n%s", ns, out)
		}
	}
}

// TestJoinPrerequisites checks what `kubeadm join` needs from the cluster:
// the bootstrap token, the cluster-info ConfigMap signed for it, and the
// kubeadm and kubelet configuration uploaded.
func TestJoinPrerequisites(t *testing.T) {
	testbed.Require(t, bed)
	ctx := t.Context()
	client, err := bed.Client(testbed.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := strings.Cut(bed.Token(), ".")
	secret, err := client.CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-"+id, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("bootstrap token secret: %v", err)
	}
	if secret.Type != corev1.SecretTypeBootstrapToken || !strings.HasPrefix(bed.Token(), string(secret.Data["token-id"])+"."+string(secret.Data["token-secret"])) {
		t.Errorf("bootstrap token secret %s does not hold the bed's token (type %s)", secret.Name, secret.Type)
	}
	// The controller-manager's bootstrap signer adds the signature
	// asynchronously: poll for it.
	key := "jws-kubeconfig-" + id
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; ; attempt++ {
		cm, err := client.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
		if err == nil && cm.Data[key] != "" {
			if !strings.Contains(cm.Data["kubeconfig"], bed.ControlPlaneEndpoint()) {
				t.Errorf("cluster-info kubeconfig does not point at %s:\n%s", bed.ControlPlaneEndpoint(), cm.Data["kubeconfig"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster-info not signed for token %s after 1m (last error %v)", id, err)
		}
		sleepCtx(ctx, attempt)
	}
	for _, name := range []string{"kubeadm-config", "kubelet-config"} {
		if _, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("ConfigMap kube-system/%s: %v", name, err)
		}
	}
}

// sleepCtx waits a growing interval between polls, or until ctx ends.
func sleepCtx(ctx context.Context, attempt int) {
	d := min(50*time.Millisecond<<min(attempt, 5), time.Second)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
