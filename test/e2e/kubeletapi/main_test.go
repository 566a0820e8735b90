package kubeletapi

import (
	"context"
	"fmt"
	"os"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/berthnode/berth/test/testbed"
)

// bed is the test bed all tests of this package share (nil as non-root).
var bed *testbed.Testbed

// The log limits the cluster's KubeletConfiguration gets.
const (
	logMaxSize  = 5 << 20
	logMaxFiles = 3
)

func TestMain(m *testing.M) {
	os.Exit(testbed.RunTests(m, testbed.Options{Nodes: 1, Setup: setup}, &bed))
}

// setup sets small container log limits in the cluster's kubelet-config
// ConfigMap, which `kubeadm join` writes to the nodes, then joins them.
func setup(ctx context.Context, tb *testbed.Testbed) error {
	client, err := tb.Client(testbed.AdminKubeconfig)
	if err != nil {
		return err
	}
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubelet-config", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kubelet-config: %w", err)
	}
	var kc map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["kubelet"]), &kc); err != nil {
		return fmt.Errorf("kubelet-config: %w", err)
	}
	kc["containerLogMaxSize"] = fmt.Sprintf("%dMi", logMaxSize>>20)
	kc["containerLogMaxFiles"] = logMaxFiles
	kc["containerLogMonitorInterval"] = "3s"
	data, err := yaml.Marshal(kc)
	if err != nil {
		return err
	}
	cm.Data["kubelet"] = string(data)
	if _, err := client.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("kubelet-config: %w", err)
	}
	return testbed.JoinAll(ctx, tb)
}
