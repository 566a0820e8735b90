package config

// APIVersion is the only configuration API version berth understands.
const APIVersion = "berth.dev/v1alpha1"

// Kind is the kind of berth's configuration document.
const Kind = "BerthConfiguration"

// PodNetwork says who provides the network of pods on this node.
type PodNetwork string

const (
	// PodNetworkBuiltin means berth wires pods to the node itself.
	PodNetworkBuiltin PodNetwork = "builtin"
	// PodNetworkCNI means a CNI add-on installed by the operator owns pod
	// networking and berth only invokes it through the container runtime.
	PodNetworkCNI PodNetwork = "cni"
)

// ProxyMode selects the kernel facility that implements Service virtual IPs.
type ProxyMode string

const (
	// ProxyModeIPTables programs services as iptables NAT rules.
	ProxyModeIPTables ProxyMode = "iptables"
	// ProxyModeIPVS programs services as IPVS virtual servers with
	// round-robin scheduling.
	ProxyModeIPVS ProxyMode = "ipvs"
	// ProxyModeNFTables programs services as nftables tables. Accepted,
	// but this berth has no nftables backend yet: asking for it in this
	// file stops the proxy with an error naming the setting.
	ProxyModeNFTables ProxyMode = "nftables"
)

// Config is berth's configuration file, a BerthConfiguration document.
type Config struct {
	// APIVersion must be APIVersion.
	APIVersion string `json:"apiVersion"`
	// Kind must be Kind.
	Kind string `json:"kind"`
	// NodeName is the name of the Node object berth registers and serves.
	// When empty, Load uses the lowercased hostname, as kubelet does.
	NodeName string `json:"nodeName,omitempty"`
	// Kubelet says where kubeadm left the kubelet's settings and credentials
	// and how pods are run.
	Kubelet KubeletConfig `json:"kubelet"`
	// Proxy configures the replacement for kube-proxy.
	Proxy ProxyConfig `json:"proxy"`
}

// KubeletConfig holds the part of the configuration that replaces kubelet.
type KubeletConfig struct {
	// ConfigFile is the KubeletConfiguration file written by kubeadm join.
	ConfigFile string `json:"configFile"`
	// KubeadmFlagsFile is the environment file in which kubeadm join records
	// node-specific kubelet flags (KUBELET_KUBEADM_ARGS).
	KubeadmFlagsFile string `json:"kubeadmFlagsFile"`
	// BootstrapKubeconfig is the kubeconfig holding the bootstrap token used
	// to request the node's first client certificate.
	BootstrapKubeconfig string `json:"bootstrapKubeconfig"`
	// Kubeconfig is the node's own kubeconfig; it is written after TLS
	// bootstrap and used from then on.
	Kubeconfig string `json:"kubeconfig"`
	// RootDir is kubelet's --root-dir: pod volumes, plugin sockets and the
	// node's rotated client certificates (pki/).
	RootDir string `json:"rootDir"`
	// ContainerRuntimeEndpoint is the CRI socket of the container runtime,
	// as a unix:// URL, for a node whose kubelet configuration names none:
	// the KubeletConfiguration file's containerRuntimeEndpoint and the
	// --container-runtime-endpoint flag win over it (kubeadm writes the
	// node's socket there). Empty: theirs, or else
	// DefaultContainerRuntimeEndpoint.
	ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint,omitempty"`
	// PodNetwork says who provides pod networking.
	PodNetwork PodNetwork `json:"podNetwork"`
}

// ProxyConfig holds the part of the configuration that replaces kube-proxy.
type ProxyConfig struct {
	// Enabled runs the service proxy. Turn it off when something else (a
	// kube-proxy DaemonSet, a CNI with its own service implementation)
	// already programs services on the node.
	Enabled bool `json:"enabled"`
	// Mode selects how services are programmed. It wins over the mode of
	// the KubeProxyConfiguration (ConfigFile's, then the cluster's
	// ConfigMap's), which berth follows when Mode is empty; a conflict is
	// logged at startup. Nothing set anywhere: iptables (docs/proxy.md,
	// "Configuration").
	Mode ProxyMode `json:"mode,omitempty"`
	// ConfigFile is an optional KubeProxyConfiguration file. Fields it
	// leaves unset take their values from the cluster's
	// kube-system/kube-proxy ConfigMap.
	ConfigFile string `json:"configFile,omitempty"`
}

// DefaultContainerRuntimeEndpoint is containerd's socket, the kubelet's
// default CRI endpoint.
const DefaultContainerRuntimeEndpoint = "unix:///run/containerd/containerd.sock"

// Default returns the configuration used for every field a file leaves
// unset: the paths kubeadm join writes, built-in pod networking and the
// proxy, in the mode the KubeProxyConfiguration says (Proxy.Mode empty).
// NodeName stays empty; Load fills it from the hostname.
// ContainerRuntimeEndpoint stays empty: the kubelet's configuration says
// which socket, or else its default does.
func Default() *Config {
	return &Config{
		APIVersion: APIVersion,
		Kind:       Kind,
		Kubelet: KubeletConfig{
			ConfigFile:          "/var/lib/kubelet/config.yaml",
			KubeadmFlagsFile:    "/var/lib/kubelet/kubeadm-flags.env",
			BootstrapKubeconfig: "/etc/kubernetes/bootstrap-kubelet.conf",
			Kubeconfig:          "/etc/kubernetes/kubelet.conf",
			RootDir:             "/var/lib/kubelet",
			PodNetwork:          PodNetworkBuiltin,
		},
		Proxy: ProxyConfig{
			Enabled: true,
		},
	}
}
