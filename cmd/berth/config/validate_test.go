package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ignoreDetail compares field errors by type, path and value: the detail is
// prose for humans.
var ignoreDetail = cmpopts.IgnoreFields(field.Error{}, "Detail")

// fieldErrors returns the *field.Error values aggregated in err.
func fieldErrors(err error) field.ErrorList {
	var agg utilerrors.Aggregate
	if !errors.As(err, &agg) {
		return nil
	}
	var list field.ErrorList
	for _, e := range agg.Errors() {
		var fe *field.Error
		if errors.As(e, &fe) {
			list = append(list, fe)
		}
	}
	return list
}

func TestValidate(t *testing.T) {
	kubelet := field.NewPath("kubelet")
	proxy := field.NewPath("proxy")
	tests := []struct {
		name   string
		modify func(*Config)
		want   field.ErrorList
	}{
		{
			name: "defaults",
		},
		{
			name:   "node name",
			modify: func(c *Config) { c.NodeName = "worker-1.example.com" },
		},
		{
			name: "every alternative",
			modify: func(c *Config) {
				c.Kubelet.PodNetwork = PodNetworkCNI
				c.Kubelet.ContainerRuntimeEndpoint = "unix:///var/run/crio/crio.sock"
				c.Proxy.Mode = ProxyModeIPVS
				c.Proxy.ConfigFile = "/etc/berth/kube-proxy.yaml"
			},
		},
		{
			name:   "missing apiVersion",
			modify: func(c *Config) { c.APIVersion = "" },
			want:   field.ErrorList{field.Required(field.NewPath("apiVersion"), "")},
		},
		{
			name:   "wrong apiVersion",
			modify: func(c *Config) { c.APIVersion = "kubelet.config.k8s.io/v1beta1" },
			want:   field.ErrorList{field.NotSupported[string](field.NewPath("apiVersion"), "kubelet.config.k8s.io/v1beta1", nil)},
		},
		{
			name:   "missing kind",
			modify: func(c *Config) { c.Kind = "" },
			want:   field.ErrorList{field.Required(field.NewPath("kind"), "")},
		},
		{
			name:   "wrong kind",
			modify: func(c *Config) { c.Kind = "KubeletConfiguration" },
			want:   field.ErrorList{field.NotSupported[string](field.NewPath("kind"), "KubeletConfiguration", nil)},
		},
		{
			name:   "node name not lowercase",
			modify: func(c *Config) { c.NodeName = "Worker-1" },
			want:   field.ErrorList{field.Invalid(field.NewPath("nodeName"), "Worker-1", "")},
		},
		{
			name:   "node name too long",
			modify: func(c *Config) { c.NodeName = strings.Repeat("a", 254) },
			want:   field.ErrorList{field.Invalid(field.NewPath("nodeName"), strings.Repeat("a", 254), "")},
		},
		{
			name:   "relative kubelet config file",
			modify: func(c *Config) { c.Kubelet.ConfigFile = "config.yaml" },
			want:   field.ErrorList{field.Invalid(kubelet.Child("configFile"), "config.yaml", "")},
		},
		{
			name:   "missing kubeadm flags file",
			modify: func(c *Config) { c.Kubelet.KubeadmFlagsFile = "" },
			want:   field.ErrorList{field.Required(kubelet.Child("kubeadmFlagsFile"), "")},
		},
		{
			name:   "relative bootstrap kubeconfig",
			modify: func(c *Config) { c.Kubelet.BootstrapKubeconfig = "./bootstrap-kubelet.conf" },
			want:   field.ErrorList{field.Invalid(kubelet.Child("bootstrapKubeconfig"), "./bootstrap-kubelet.conf", "")},
		},
		{
			name:   "missing kubeconfig",
			modify: func(c *Config) { c.Kubelet.Kubeconfig = "" },
			want:   field.ErrorList{field.Required(kubelet.Child("kubeconfig"), "")},
		},
		{
			name:   "relative root dir",
			modify: func(c *Config) { c.Kubelet.RootDir = "var/lib/kubelet" },
			want:   field.ErrorList{field.Invalid(kubelet.Child("rootDir"), "var/lib/kubelet", "")},
		},
		{
			// The kubelet's configuration names the socket.
			name:   "no runtime endpoint",
			modify: func(c *Config) { c.Kubelet.ContainerRuntimeEndpoint = "" },
		},
		{
			name:   "runtime endpoint without scheme",
			modify: func(c *Config) { c.Kubelet.ContainerRuntimeEndpoint = "/run/containerd/containerd.sock" },
			want:   field.ErrorList{field.Invalid(kubelet.Child("containerRuntimeEndpoint"), "/run/containerd/containerd.sock", "")},
		},
		{
			name:   "tcp runtime endpoint",
			modify: func(c *Config) { c.Kubelet.ContainerRuntimeEndpoint = "tcp://127.0.0.1:3735" },
			want:   field.ErrorList{field.Invalid(kubelet.Child("containerRuntimeEndpoint"), "tcp://127.0.0.1:3735", "")},
		},
		{
			name:   "relative socket path",
			modify: func(c *Config) { c.Kubelet.ContainerRuntimeEndpoint = "unix://run/containerd/containerd.sock" },
			want:   field.ErrorList{field.Invalid(kubelet.Child("containerRuntimeEndpoint"), "unix://run/containerd/containerd.sock", "")},
		},
		{
			name:   "unknown pod network",
			modify: func(c *Config) { c.Kubelet.PodNetwork = "flannel" },
			want:   field.ErrorList{field.NotSupported[string](kubelet.Child("podNetwork"), PodNetwork("flannel"), nil)},
		},
		{
			name:   "empty pod network",
			modify: func(c *Config) { c.Kubelet.PodNetwork = "" },
			want:   field.ErrorList{field.NotSupported[string](kubelet.Child("podNetwork"), PodNetwork(""), nil)},
		},
		{
			name:   "nftables proxy mode is accepted (the proxy refuses it at startup while it has no backend)",
			modify: func(c *Config) { c.Proxy.Mode = ProxyModeNFTables },
		},
		{
			name:   "iptables proxy mode",
			modify: func(c *Config) { c.Proxy.Mode = ProxyModeIPTables },
		},
		{
			name:   "unknown proxy mode",
			modify: func(c *Config) { c.Proxy.Mode = "kernelspace" },
			want:   field.ErrorList{field.NotSupported[string](proxy.Child("mode"), ProxyMode("kernelspace"), nil)},
		},
		{
			name: "disabled proxy still validated",
			modify: func(c *Config) {
				c.Proxy.Enabled = false
				c.Proxy.Mode = "userspace"
			},
			want: field.ErrorList{field.NotSupported[string](proxy.Child("mode"), ProxyMode("userspace"), nil)},
		},
		{
			name:   "relative proxy config file",
			modify: func(c *Config) { c.Proxy.ConfigFile = "kube-proxy.yaml" },
			want:   field.ErrorList{field.Invalid(proxy.Child("configFile"), "kube-proxy.yaml", "")},
		},
		{
			name: "all problems at once",
			modify: func(c *Config) {
				c.Kind = ""
				c.NodeName = "node_1"
				c.Kubelet.RootDir = "kubelet"
				c.Proxy.Mode = "ipvs-rr"
			},
			want: field.ErrorList{
				field.Required(field.NewPath("kind"), ""),
				field.Invalid(field.NewPath("nodeName"), "node_1", ""),
				field.Invalid(kubelet.Child("rootDir"), "kubelet", ""),
				field.NotSupported[string](proxy.Child("mode"), ProxyMode("ipvs-rr"), nil),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			if tt.modify != nil {
				tt.modify(cfg)
			}
			err := cfg.Validate()
			if (err == nil) != (len(tt.want) == 0) {
				t.Fatalf("Validate() = %v, want errors %v", err, tt.want)
			}
			if diff := cmp.Diff(tt.want, fieldErrors(err), ignoreDetail); diff != "" {
				t.Errorf("Validate() field errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
