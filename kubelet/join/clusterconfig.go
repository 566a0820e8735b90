package join

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"
)

// The ConfigMaps kubeadm keeps the cluster's configuration in, readable
// with a bootstrap token.
const (
	// kubeletConfigMap holds the cluster's KubeletConfiguration under
	// kubeletConfigKey.
	kubeletConfigMap = "kubelet-config"
	kubeletConfigKey = "kubelet"
	// kubeadmConfigMap holds kubeadm's ClusterConfiguration under
	// clusterConfigKey.
	kubeadmConfigMap = "kubeadm-config"
	clusterConfigKey = "ClusterConfiguration"
)

// kubeadm's defaults for what the cluster's configuration leaves unset.
const (
	defaultClusterName     = "kubernetes"
	defaultCertificatesDir = "/etc/kubernetes/pki"
)

// Errors of reading the cluster's configuration.
var (
	// ErrNoKubeletConfig means the cluster publishes no kubelet
	// configuration (kube-system/kubelet-config, key "kubelet").
	ErrNoKubeletConfig = errors.New("the cluster publishes no kubelet configuration (kube-system/kubelet-config, key \"kubelet\"); " +
		"on a control-plane node: kubeadm init phase upload-config kubelet")
	// ErrTokenRejected means the API server does not accept the bootstrap
	// token as a credential.
	ErrTokenRejected = errors.New("the API server rejects the bootstrap token: it has expired or was deleted")
)

// clusterConfig is what join needs of kubeadm's ClusterConfiguration; the
// fields have these names in every kubeadm.k8s.io version.
type clusterConfig struct {
	metav1.TypeMeta `json:",inline"`
	// ClusterName names the cluster in the bootstrap kubeconfig.
	ClusterName string `json:"clusterName"`
	// CertificatesDir is where the control plane keeps ca.crt, which the
	// kubelet configuration names as its client CA.
	CertificatesDir string `json:"certificatesDir"`
	// Networking gives the cluster DNS address and domain.
	Networking struct {
		// ServiceSubnet is the Service CIDR (comma-separated when dual
		// stack); the cluster DNS is its tenth address.
		ServiceSubnet string `json:"serviceSubnet"`
		// DNSDomain is the cluster domain.
		DNSDomain string `json:"dnsDomain"`
	} `json:"networking"`
}

// clusterSettings is the cluster's configuration as the node needs it.
type clusterSettings struct {
	// kubelet is the KubeletConfiguration document of kubelet-config.
	kubelet string
	// cluster is kubeadm's ClusterConfiguration, nil when the cluster
	// does not share it.
	cluster *clusterConfig
}

// clusterName returns the cluster's name, kubeadm's default when unknown.
func (s *clusterSettings) clusterName() string {
	if s.cluster == nil || s.cluster.ClusterName == "" {
		return defaultClusterName
	}
	return s.cluster.ClusterName
}

// readClusterSettings reads the kubelet configuration, and kubeadm's
// ClusterConfiguration if the cluster shares it.
func readClusterSettings(ctx context.Context, client kubernetes.Interface, poll poller) (*clusterSettings, error) {
	cm, err := getConfigMap(ctx, client, poll, kubeletConfigMap)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %w", ErrNoKubeletConfig, err)
	}
	if err != nil {
		return nil, err
	}
	s := &clusterSettings{kubelet: cm.Data[kubeletConfigKey]}
	if strings.TrimSpace(s.kubelet) == "" {
		return nil, ErrNoKubeletConfig
	}
	// kubeadm join reads it for the cluster's name and the defaults it
	// derives from the cluster's network; a cluster without it still
	// joins, with kubeadm's defaults and no cluster DNS guessed.
	cm, err = getConfigMap(ctx, client, poll, kubeadmConfigMap)
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
		klog.FromContext(ctx).Info("No kubeadm ClusterConfiguration; using kubeadm's defaults", "configMap", "kube-system/"+kubeadmConfigMap, "err", err)
		return s, nil
	case err != nil:
		return nil, err
	}
	s.cluster, err = parseClusterConfig(cm.Data[clusterConfigKey])
	if err != nil {
		return nil, fmt.Errorf("kube-system/%s: %w", kubeadmConfigMap, err)
	}
	return s, nil
}

// getConfigMap reads kube-system/name, retrying what may pass.
func getConfigMap(ctx context.Context, client kubernetes.Interface, poll poller, name string) (*v1.ConfigMap, error) {
	var cm *v1.ConfigMap
	err := poll.run(ctx, "read kube-system/"+name, func(ctx context.Context) (bool, error) {
		var err error
		cm, err = client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			return false, nil
		case apierrors.IsUnauthorized(err):
			return false, fmt.Errorf("read kube-system/%s: %w: %w", name, ErrTokenRejected, err)
		case apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || isCertificateError(err):
			return false, fmt.Errorf("read kube-system/%s: %w", name, err)
		}
		return true, fmt.Errorf("read kube-system/%s: %w", name, err)
	})
	return cm, err
}

// parseClusterConfig decodes kubeadm's ClusterConfiguration.
func parseClusterConfig(data string) (*clusterConfig, error) {
	if strings.TrimSpace(data) == "" {
		return nil, fmt.Errorf("no %s", clusterConfigKey)
	}
	var c clusterConfig
	if err := yaml.Unmarshal([]byte(data), &c); err != nil {
		return nil, fmt.Errorf("%s: %w", clusterConfigKey, err)
	}
	group, _, _ := strings.Cut(c.APIVersion, "/")
	if group != "kubeadm.k8s.io" || c.Kind != "ClusterConfiguration" {
		return nil, fmt.Errorf("%s: apiVersion %q kind %q: want a kubeadm.k8s.io ClusterConfiguration", clusterConfigKey, c.APIVersion, c.Kind)
	}
	return &c, nil
}
