package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

// kubeadmConfig is what kubeadm v1.37 join writes to config.yaml, trimmed.
const kubeadmConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failCgroupV1: false
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
`

func TestDecodeKubeletConfiguration(t *testing.T) {
	cfg, err := DecodeKubeletConfiguration([]byte(kubeadmConfig))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.96.0.10"}, cfg.ClusterDNS); diff != "" {
		t.Errorf("clusterDNS (-want +got):\n%s", diff)
	}
	checks := map[string]bool{
		"clusterDomain kept":        cfg.ClusterDomain == "cluster.local",
		"rotateCertificates kept":   cfg.RotateCertificates,
		"staticPodPath kept":        cfg.StaticPodPath == "/etc/kubernetes/manifests",
		"port defaulted":            cfg.Port == 10250,
		"healthz port defaulted":    *cfg.HealthzPort == 10248,
		"healthz address defaulted": cfg.HealthzBindAddress == "127.0.0.1",
		"maxPods defaulted":         cfg.MaxPods == 110,
		"status frequency":          cfg.NodeStatusUpdateFrequency.Duration == 10*time.Second,
		"report frequency":          cfg.NodeStatusReportFrequency.Duration == 5*time.Minute,
		"lease duration":            cfg.NodeLeaseDurationSeconds == 40,
		"eviction default":          cfg.EvictionHard["memory.available"] == "100Mi",
		"cgroups per QoS":           *cfg.CgroupsPerQOS,
		"cgroup root":               cfg.CgroupRoot == "/",
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("%s: not as expected", what)
		}
	}
}

func TestDecodeKubeletConfigurationErrors(t *testing.T) {
	tests := map[string]struct{ doc, want string }{
		"empty":         {"", "empty document"},
		"wrong kind":    {"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: Other\n", "want kubelet.config.k8s.io/v1beta1 KubeletConfiguration"},
		"unknown field": {kubeadmConfig + "maxPod: 3\n", `unknown field "maxPod"`},
		"wrong type":    {kubeadmConfig + "maxPods: many\n", "decode"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeKubeletConfiguration([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestExplicitValuesBeatDefaults(t *testing.T) {
	cfg, err := DecodeKubeletConfiguration([]byte(kubeadmConfig + "maxPods: 20\nevictionHard:\n  memory.available: 1Gi\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxPods != 20 {
		t.Errorf("maxPods %d, want 20", cfg.MaxPods)
	}
	if diff := cmp.Diff(map[string]string{"memory.available": "1Gi"}, cfg.EvictionHard); diff != "" {
		t.Errorf("an explicit evictionHard replaces the defaults (-want +got):\n%s", diff)
	}
}

func TestParseFlags(t *testing.T) {
	args := []string{
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
		"--kubeconfig", "/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml",
		"--node-ip=192.168.1.5,fd00::5",
		"--hostname-override=Worker-1",
		"--node-labels=role=edge,zone=a",
		"--register-with-taints=dedicated=infra:NoSchedule,gpu:NoExecute",
		"--pod-infra-container-image=registry.k8s.io/pause:3.10",
		"--cgroup-root=/berth",
		"--max-pods=50",
		"--v=2",
		"--vmodule=worker=4",
		"--fancy-new-flag=x",
		"--some-bool",
	}
	f, warnings, err := ParseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	want := Flags{
		BootstrapKubeconfig:    "/etc/kubernetes/bootstrap-kubelet.conf",
		Kubeconfig:             "/etc/kubernetes/kubelet.conf",
		Config:                 "/var/lib/kubelet/config.yaml",
		PodInfraContainerImage: "registry.k8s.io/pause:3.10",
		NodeIPs:                []string{"192.168.1.5", "fd00::5"},
		HostnameOverride:       "Worker-1",
		NodeLabels:             map[string]string{"role": "edge", "zone": "a"},
		Overrides: map[string]string{
			"cgroup-root": "/berth", "max-pods": "50",
			"register-with-taints": "dedicated=infra:NoSchedule,gpu:NoExecute",
		},
		Verbosity: "2",
		VModule:   "worker=4",
	}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
	wantWarnings := []string{"ignoring unknown kubelet flag --fancy-new-flag=x", "ignoring unknown kubelet flag --some-bool"}
	if diff := cmp.Diff(wantWarnings, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	cfg, err := DecodeKubeletConfiguration([]byte(kubeadmConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.CgroupRoot != "/berth" || cfg.MaxPods != 50 {
		t.Errorf("after Apply: cgroupRoot %q maxPods %d, want /berth 50", cfg.CgroupRoot, cfg.MaxPods)
	}
	wantTaints := []v1.Taint{
		{Key: "dedicated", Value: "infra", Effect: v1.TaintEffectNoSchedule},
		{Key: "gpu", Effect: v1.TaintEffectNoExecute},
	}
	if diff := cmp.Diff(wantTaints, cfg.RegisterWithTaints); diff != "" {
		t.Errorf("registerWithTaints after Apply (-want +got):\n%s", diff)
	}
}

func TestParseFlagsLaterWins(t *testing.T) {
	f, _, err := ParseFlags([]string{"--kubeconfig=/a", "--kubeconfig=/b"})
	if err != nil || f.Kubeconfig != "/b" {
		t.Errorf("kubeconfig %q, %v; want /b", f.Kubeconfig, err)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	tests := map[string][]string{
		"positional argument": {"run"},
		"missing value":       {"--kubeconfig"},
		"bad taint effect":    {"--register-with-taints=a=b:Sometimes"},
		"bad label":           {"--node-labels=novalue"},
		"three dashes":        {"---kubeconfig=/a"},
		"bad verbosity":       {"--v=loud"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := ParseFlags(args); err == nil {
				t.Errorf("ParseFlags(%q): no error", args)
			}
		})
	}
	for _, arg := range []string{"--max-pods=lots", "--cgroups-per-qos=maybe", "--sync-frequency=often", "--eviction-hard=memory.available"} {
		if _, _, err := ParseFlags([]string{arg}); err == nil || !strings.Contains(err.Error(), arg) {
			t.Errorf("ParseFlags(%s): %v, want an error naming the flag", arg, err)
		}
	}
}

func TestReadKubeadmFlags(t *testing.T) {
	dir := t.TempDir()
	tests := map[string]struct {
		content string
		want    []string
	}{
		"kubeadm 1.37":     {`KUBELET_KUBEADM_ARGS=""` + "\n", []string{}},
		"quoted args":      {`KUBELET_KUBEADM_ARGS="--cgroup-root=/x --node-ip=10.0.0.1"` + "\n", []string{"--cgroup-root=/x", "--node-ip=10.0.0.1"}},
		"other variables":  {"# comment\nOTHER=1\nKUBELET_KUBEADM_ARGS='--v=2'\n", []string{"--v=2"}},
		"unquoted, spaced": {"KUBELET_KUBEADM_ARGS = --a=b\n", []string{"--a=b"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadKubeadmFlags(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
	if got, err := ReadKubeadmFlags(filepath.Join(dir, "missing")); err != nil || got != nil {
		t.Errorf("missing file: %v, %v; want nil, nil", got, err)
	}
}
