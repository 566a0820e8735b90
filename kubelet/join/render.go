package join

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	netutils "k8s.io/utils/net"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// kubeadm's values for a node's kubelet, set where the cluster's
// configuration leaves them unset.
const (
	defaultStaticPodPath      = "/etc/kubernetes/manifests"
	defaultClusterDNS         = "10.96.0.10"
	defaultHealthzBindAddress = "127.0.0.1"
	defaultHealthzPort        = 10248
	defaultCgroupDriver       = "systemd"
)

// The bootstrap kubeconfig's names, kubeadm's. The context is named before
// kubeadm learns the cluster's name, hence "kubernetes" in it whatever the
// cluster is called.
const (
	bootstrapUser    = "tls-bootstrap-token-user"
	bootstrapContext = bootstrapUser + "@" + defaultClusterName
)

// kubeadmFlagsVariable is the variable of kubeadm-flags.env that kubeadm's
// kubelet drop-in passes to kubelet.
const kubeadmFlagsVariable = "KUBELET_KUBEADM_ARGS"

// nodeSettings is what the node's files say about this node.
type nodeSettings struct {
	// criEndpoint is the runtime's endpoint URL.
	criEndpoint string
	// systemdResolved tells that systemd-resolved runs on the node.
	systemdResolved bool
}

// renderKubeletConfig returns config.yaml: the cluster's
// KubeletConfiguration with the defaults kubeadm sets and the node's own
// fields, in kubeadm's format (YAML, keys sorted). Fields this berth does
// not know are dropped, as kubeadm of the same version drops them; the
// warning says which.
func renderKubeletConfig(s *clusterSettings, node nodeSettings) (data []byte, warning string, err error) {
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.Unmarshal([]byte(s.kubelet), &kc); err != nil {
		return nil, "", fmt.Errorf("%w: decode: %w", ErrNoKubeletConfig, err)
	}
	want := kubeletv1beta1.SchemeGroupVersion.String()
	if kc.APIVersion != want || kc.Kind != "KubeletConfiguration" {
		return nil, "", fmt.Errorf("%w: apiVersion %q kind %q, want %s KubeletConfiguration", ErrNoKubeletConfig, kc.APIVersion, kc.Kind, want)
	}
	if err := yaml.UnmarshalStrict([]byte(s.kubelet), &kubeletv1beta1.KubeletConfiguration{}); err != nil {
		warning = err.Error()
	}
	setKubeadmDefaults(&kc, s.cluster)
	if node.systemdResolved && kc.ResolverConfig == nil {
		kc.ResolverConfig = ptr.To(systemdResolvConf)
	}
	kc.ContainerRuntimeEndpoint = node.criEndpoint
	data, err = yaml.Marshal(&kc)
	if err != nil {
		return nil, "", fmt.Errorf("encode kubelet configuration: %w", err)
	}
	return data, warning, nil
}

// setKubeadmDefaults fills what kc leaves unset as kubeadm does before it
// writes a node's configuration. The cluster-derived values (DNS address,
// domain) are only set when the cluster's ClusterConfiguration is known.
func setKubeadmDefaults(kc *kubeletv1beta1.KubeletConfiguration, cluster *clusterConfig) {
	if kc.StaticPodPath == "" {
		kc.StaticPodPath = defaultStaticPodPath
	}
	certDir := defaultCertificatesDir
	if cluster != nil {
		if cluster.CertificatesDir != "" {
			certDir = cluster.CertificatesDir
		}
		if kc.ClusterDNS == nil {
			kc.ClusterDNS = []string{clusterDNS(cluster.Networking.ServiceSubnet)}
		}
		if kc.ClusterDomain == "" {
			kc.ClusterDomain = cluster.Networking.DNSDomain
		}
	}
	if kc.Authentication.X509.ClientCAFile == "" {
		kc.Authentication.X509.ClientCAFile = filepath.Join(certDir, "ca.crt")
	}
	if kc.Authentication.Anonymous.Enabled == nil {
		kc.Authentication.Anonymous.Enabled = ptr.To(false)
	}
	if kc.Authentication.Webhook.Enabled == nil {
		kc.Authentication.Webhook.Enabled = ptr.To(true)
	}
	if kc.Authorization.Mode == "" {
		kc.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationModeWebhook
	}
	if kc.HealthzBindAddress == "" {
		kc.HealthzBindAddress = defaultHealthzBindAddress
	}
	if kc.HealthzPort == nil {
		kc.HealthzPort = ptr.To[int32](defaultHealthzPort)
	}
	if kc.CgroupDriver == "" {
		kc.CgroupDriver = defaultCgroupDriver
	}
	// kubeadm always has kubelet renew its client certificate.
	kc.RotateCertificates = true
}

// clusterDNS returns the cluster DNS address kubeadm derives from the
// Service CIDRs: the tenth address of the first.
func clusterDNS(serviceSubnets string) string {
	cidrs, err := netutils.ParseCIDRs(strings.Split(serviceSubnets, ","))
	if err != nil || len(cidrs) == 0 {
		return defaultClusterDNS
	}
	ip, err := netutils.GetIndexedIP(cidrs[0], 10)
	if err != nil {
		return defaultClusterDNS
	}
	return ip.String()
}

// renderInstanceConfig returns instance-config.yaml: the fields of the
// KubeletConfiguration that belong to this node, which kubeadm also merges
// into config.yaml.
func renderInstanceConfig(node nodeSettings) []byte {
	return fmt.Appendf(nil, "containerRuntimeEndpoint: %q\n", node.criEndpoint)
}

// renderKubeadmFlags returns kubeadm-flags.env: kubeadm's own flags
// (sorted), each replaced by an extra flag of the same name, then the
// extra flags in their order.
func renderKubeadmFlags(base, extra []flagArg) []byte {
	base = slices.Clone(base)
	slices.SortFunc(base, func(a, b flagArg) int { return strings.Compare(a.name, b.name) })
	var args []string
	for _, a := range base {
		if !slices.ContainsFunc(extra, func(e flagArg) bool { return e.name == a.name }) {
			args = append(args, "--"+a.name+"="+a.value)
		}
	}
	for _, a := range extra {
		args = append(args, "--"+a.name+"="+a.value)
	}
	return fmt.Appendf(nil, "%s=%q\n", kubeadmFlagsVariable, strings.Join(args, " "))
}

// baseFlags returns the flags kubeadm itself records for a worker: the
// node's name, when it is not the hostname kubelet would use.
func baseFlags(nodeName, hostname string) []flagArg {
	if nodeName == hostname {
		return nil
	}
	return []flagArg{{"hostname-override", nodeName}}
}

// renderBootstrapKubeconfig returns bootstrap-kubelet.conf: the API server
// and CA of cluster-info, with the token as credential.
func renderBootstrapKubeconfig(info *clusterInfo, clusterName string, tok bootstrapToken) ([]byte, error) {
	kc := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{clusterName: {
			Server:                   info.server,
			CertificateAuthorityData: info.caPEM,
		}},
		Contexts: map[string]*clientcmdapi.Context{bootstrapContext: {
			Cluster:  clusterName,
			AuthInfo: bootstrapUser,
		}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{bootstrapUser: {Token: tok.String()}},
		CurrentContext: bootstrapContext,
	}
	data, err := clientcmd.Write(kc)
	if err != nil {
		return nil, fmt.Errorf("encode bootstrap kubeconfig: %w", err)
	}
	return data, nil
}
