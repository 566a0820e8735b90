package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/cmd/berth/config"
)

// nodeFiles are the files of one node that berth's kubelet settings come
// from; "" leaves a file out.
type nodeFiles struct {
	// berth is the body of berth's config.yaml below "kubelet:" (indented).
	berth string
	// kubeletConfig is the KubeletConfiguration body, after the header.
	kubeletConfig string
	// kubeadmFlags is KUBELET_KUBEADM_ARGS in kubeadm-flags.env.
	kubeadmFlags string
}

// resolveOn composes the kubelet settings from files written as a kubeadm
// worker has them (with berth's config pointing at them), plus cmdline as
// the command line (kubeadm's drop-in with KUBELET_EXTRA_ARGS), and
// returns them with what was logged.
func resolveOn(t *testing.T, files nodeFiles, cmdline ...string) (*nodeSettings, string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	kubeletConfig := write("config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"+files.kubeletConfig)
	kubeadmFlags := filepath.Join(dir, "kubeadm-flags.env")
	if files.kubeadmFlags != "" {
		write("kubeadm-flags.env", `KUBELET_KUBEADM_ARGS="`+files.kubeadmFlags+`"`+"\n")
	}
	berth := write("berth.yaml", "apiVersion: berth.dev/v1alpha1\nkind: BerthConfiguration\nnodeName: worker-1\nkubelet:\n"+
		"  configFile: "+kubeletConfig+"\n  kubeadmFlagsFile: "+kubeadmFlags+"\n"+files.berth)
	cfg, err := config.Load(berth)
	if err != nil {
		t.Fatal(err)
	}
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
	ctx := klog.NewContext(context.Background(), logger)
	s, err := resolveSettings(ctx, cfg, cmdline, clock.RealClock{})
	if err != nil {
		t.Fatal(err)
	}
	return s, logger.GetSink().(ktesting.Underlier).GetBuffer().String()
}

// TestResolveSettingsRuntimeEndpoint checks the container runtime endpoint
// from every place a kubeadm worker may name it. Since kubeadm 1.27 it is
// in config.yaml only: a node whose containerd listens elsewhere must dial
// that socket, not berth's default passed as if it were a flag.
func TestResolveSettingsRuntimeEndpoint(t *testing.T) {
	const (
		alt       = "unix:///run/alt/containerd.sock"
		berthSock = "unix:///run/berth/cri.sock"
		env       = "unix:///run/env.sock"
		extra     = "unix:///run/extra.sock"
	)
	tests := []struct {
		name    string
		files   nodeFiles
		cmdline []string
		want    string
		// logged is what the log must say, "" for no conflict.
		logged string
	}{
		{name: "config.yaml only", files: nodeFiles{kubeletConfig: "containerRuntimeEndpoint: " + alt + "\n"}, want: alt},
		{name: "nowhere: kubelet's default", want: config.DefaultContainerRuntimeEndpoint},
		{name: "berth's config only", files: nodeFiles{berth: "  containerRuntimeEndpoint: " + berthSock + "\n"}, want: berthSock},
		{
			name:  "berth's config and config.yaml: kubeadm's value",
			files: nodeFiles{berth: "  containerRuntimeEndpoint: " + berthSock + "\n", kubeletConfig: "containerRuntimeEndpoint: " + alt + "\n"},
			want:  alt, logged: "ignored=\"" + berthSock + "\"",
		},
		{
			name:  "kubeadm-flags.env (kubeadm before 1.27) over config.yaml",
			files: nodeFiles{kubeletConfig: "containerRuntimeEndpoint: " + alt + "\n", kubeadmFlags: "--container-runtime-endpoint=" + env},
			want:  env, logged: "ignored=\"" + alt + "\"",
		},
		{
			name:    "KUBELET_EXTRA_ARGS over kubeadm-flags.env",
			files:   nodeFiles{kubeadmFlags: "--container-runtime-endpoint=" + env},
			cmdline: []string{"--container-runtime-endpoint=" + extra},
			want:    extra, logged: "the command line counts",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, logged := resolveOn(t, tt.files, tt.cmdline...)
			if got := s.kubelet.ContainerRuntimeEndpoint; got != tt.want {
				t.Errorf("containerRuntimeEndpoint %q, want %q", got, tt.want)
			}
			conflict := strings.Contains(logged, "given by")
			switch {
			case tt.logged == "" && conflict:
				t.Errorf("a conflict was logged:\n%s", logged)
			case tt.logged != "" && !strings.Contains(logged, tt.logged):
				t.Errorf("log lacks %q:\n%s", tt.logged, logged)
			}
		})
	}
}

// TestResolveSettingsFlagsAndFile checks the other fields across the
// sources: a field only the file sets keeps the file's value, the flags
// of kubeadm-flags.env and the command line win over it, and the command
// line over kubeadm-flags.env.
func TestResolveSettingsFlagsAndFile(t *testing.T) {
	s, _ := resolveOn(t, nodeFiles{
		kubeletConfig: "cgroupRoot: /from-file\nmaxPods: 20\nclusterDomain: cluster.local\n" +
			"registerWithTaints:\n- key: dedicated\n  effect: NoSchedule\n",
		kubeadmFlags: "--max-pods=30 --node-ip=192.0.2.7",
	}, "--max-pods=40", "--cgroup-root=/from-cmdline")
	k := s.kubelet
	if k.CgroupRoot != "/from-cmdline" || k.MaxPods != 40 || k.ClusterDomain != "cluster.local" {
		t.Errorf("cgroupRoot %q maxPods %d clusterDomain %q; want /from-cmdline 40 cluster.local", k.CgroupRoot, k.MaxPods, k.ClusterDomain)
	}
	if len(k.RegisterWithTaints) != 1 || k.RegisterWithTaints[0].Key != "dedicated" {
		t.Errorf("registerWithTaints %v, want the file's", k.RegisterWithTaints)
	}
	if len(s.nodeIPs) != 1 || s.nodeIPs[0].String() != "192.0.2.7" {
		t.Errorf("node IPs %v, want kubeadm-flags.env's 192.0.2.7", s.nodeIPs)
	}
}
