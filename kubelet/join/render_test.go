package join

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func TestRenderKubeadmFlags(t *testing.T) {
	tests := []struct {
		name        string
		base, extra []flagArg
		want        string
	}{
		{name: "none", want: `KUBELET_KUBEADM_ARGS=""` + "\n"},
		{
			name:  "kubeadm's sorted, then extra in order",
			base:  []flagArg{{"register-with-taints", "a=b:NoSchedule"}, {"hostname-override", "node1"}},
			extra: []flagArg{{"node-ip", "10.0.0.2"}, {"cgroup-root", "/berth"}},
			want:  `KUBELET_KUBEADM_ARGS="--hostname-override=node1 --register-with-taints=a=b:NoSchedule --node-ip=10.0.0.2 --cgroup-root=/berth"` + "\n",
		},
		{
			name:  "extra replaces kubeadm's",
			base:  []flagArg{{"hostname-override", "node1"}},
			extra: []flagArg{{"hostname-override", "node2"}},
			want:  `KUBELET_KUBEADM_ARGS="--hostname-override=node2"` + "\n",
		},
		{
			name:  "quotes escaped",
			extra: []flagArg{{"node-labels", `a="b"`}},
			want:  `KUBELET_KUBEADM_ARGS="--node-labels=a=\"b\""` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, string(renderKubeadmFlags(tt.base, tt.extra))); diff != "" {
				t.Errorf("renderKubeadmFlags() (-want +got):\n%s", diff)
			}
		})
	}
}

// testClusterYAML is a ClusterConfiguration with values other than
// kubeadm's defaults.
const testClusterYAML = `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
certificatesDir: /srv/pki
networking:
  dnsDomain: example.internal
  serviceSubnet: 10.100.0.0/16,fd00:100::/108
`

// minimalKubeletConfig is the smallest KubeletConfiguration.
const minimalKubeletConfig = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"

// setTestDefaults sets what kubeadm sets on every node's configuration,
// and the node's runtime of TestRenderKubeletConfig.
func setTestDefaults(kc *kubeletv1beta1.KubeletConfiguration) {
	kc.APIVersion, kc.Kind = "kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"
	kc.StaticPodPath = "/etc/kubernetes/manifests"
	kc.Authentication.Anonymous.Enabled = ptr.To(false)
	kc.Authentication.Webhook.Enabled = ptr.To(true)
	kc.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationModeWebhook
	kc.HealthzBindAddress = "127.0.0.1"
	kc.HealthzPort = ptr.To[int32](10248)
	kc.CgroupDriver = "systemd"
	kc.RotateCertificates = true
	kc.ContainerRuntimeEndpoint = "unix:///run/crio/crio.sock"
}

var renderKubeletConfigCases = []struct {
	name    string
	kubelet string
	// cluster is the ClusterConfiguration, "" when unknown.
	cluster  string
	resolved bool
	// want sets what is wanted besides setTestDefaults.
	want    func(*kubeletv1beta1.KubeletConfiguration)
	warning bool
}{
	{
		name: "minimal, cluster known", kubelet: minimalKubeletConfig, cluster: testClusterYAML,
		want: func(kc *kubeletv1beta1.KubeletConfiguration) {
			kc.ClusterDNS = []string{"10.100.0.10"}
			kc.ClusterDomain = "example.internal"
			kc.Authentication.X509.ClientCAFile = "/srv/pki/ca.crt"
		},
	},
	{
		name: "minimal, cluster unknown: no DNS guessed", kubelet: minimalKubeletConfig,
		want: func(kc *kubeletv1beta1.KubeletConfiguration) {
			kc.Authentication.X509.ClientCAFile = "/etc/kubernetes/pki/ca.crt"
		},
	},
	{
		name: "systemd-resolved", kubelet: minimalKubeletConfig, resolved: true,
		want: func(kc *kubeletv1beta1.KubeletConfiguration) {
			kc.Authentication.X509.ClientCAFile = "/etc/kubernetes/pki/ca.crt"
			kc.ResolverConfig = ptr.To("/run/systemd/resolve/resolv.conf")
		},
	},
	{
		name: "the cluster's values kept", cluster: testClusterYAML, resolved: true,
		kubelet: minimalKubeletConfig + `cgroupDriver: cgroupfs
clusterDNS: [10.0.0.53]
clusterDomain: corp.local
resolvConf: /etc/resolv.conf
healthzPort: 0
containerRuntimeEndpoint: unix:///elsewhere.sock
rotateCertificates: false
someFutureField: 1
`,
		want: func(kc *kubeletv1beta1.KubeletConfiguration) {
			kc.CgroupDriver = "cgroupfs"
			kc.ClusterDNS = []string{"10.0.0.53"}
			kc.ClusterDomain = "corp.local"
			kc.ResolverConfig = ptr.To("/etc/resolv.conf")
			kc.HealthzPort = ptr.To[int32](0)
			kc.Authentication.X509.ClientCAFile = "/srv/pki/ca.crt"
		},
		warning: true,
	},
}

func TestRenderKubeletConfig(t *testing.T) {
	for _, tt := range renderKubeletConfigCases {
		t.Run(tt.name, func(t *testing.T) {
			s := &clusterSettings{kubelet: tt.kubelet}
			if tt.cluster != "" {
				var err error
				if s.cluster, err = parseClusterConfig(tt.cluster); err != nil {
					t.Fatal(err)
				}
			}
			data, warning, err := renderKubeletConfig(s, nodeSettings{criEndpoint: "unix:///run/crio/crio.sock", systemdResolved: tt.resolved})
			if err != nil {
				t.Fatal(err)
			}
			if (warning != "") != tt.warning {
				t.Errorf("warning %q, want one: %v", warning, tt.warning)
			}
			var got kubeletv1beta1.KubeletConfiguration
			if err := yaml.UnmarshalStrict(data, &got); err != nil {
				t.Fatalf("written configuration does not decode: %v\n%s", err, data)
			}
			var want kubeletv1beta1.KubeletConfiguration
			setTestDefaults(&want)
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("renderKubeletConfig() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClusterDNS(t *testing.T) {
	for subnets, want := range map[string]string{
		"10.96.0.0/12":                 "10.96.0.10",
		"10.100.0.0/16,fd00:100::/108": "10.100.0.10",
		"fd00:100::/108,10.100.0.0/16": "fd00:100::a",
		"":                             "10.96.0.10",
		"not-a-cidr":                   "10.96.0.10",
	} {
		if got := clusterDNS(subnets); got != want {
			t.Errorf("clusterDNS(%q) = %s, want %s", subnets, got, want)
		}
	}
}
