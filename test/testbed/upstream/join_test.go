package upstream

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

// The kube-proxy ConfigMap as `kubeadm init phase addon kube-proxy` writes it
// (abridged).
const kubeadmProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 0.0.0.0
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
clusterCIDR: 10.244.0.0/16
conntrack:
  maxPerCore: null
  min: null
mode: ""
`

func TestKubeProxyConfig(t *testing.T) {
	client := fake.NewClientset(&v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
		Data:       map[string]string{"config.conf": kubeadmProxyConfig},
	})
	cfg, err := kubeProxyConfig(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(withHostname(cfg, "node1"), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiVersion":       "kubeproxy.config.k8s.io/v1alpha1",
		"kind":             "KubeProxyConfiguration",
		"bindAddress":      "0.0.0.0",
		"clientConnection": map[string]any{"kubeconfig": proxyKubeconfigPath},
		"clusterCIDR":      "10.244.0.0/16",
		"conntrack":        map[string]any{"maxPerCore": float64(0), "min": float64(0), "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
		"mode":             "iptables",
		"hostnameOverride": "node1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kube-proxy configuration (-want +got):\n%s", diff)
	}
	if _, ok := cfg["hostnameOverride"]; ok {
		t.Error("withHostname changed the shared configuration")
	}
}

func TestKubeProxyConfigWithoutConfigMap(t *testing.T) {
	if _, err := kubeProxyConfig(context.Background(), fake.NewClientset()); err == nil {
		t.Error("no error without the kube-proxy ConfigMap")
	}
}
