package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"

	"github.com/berthnode/berth/cmd/berth/config"
	"github.com/berthnode/berth/netrules/sysctl"
	proxyconfig "github.com/berthnode/berth/proxy/config"
)

// kubeProxyConfigMap is the cluster's kube-proxy ConfigMap with the mode
// and the IPVS sync period.
func kubeProxyConfigMap(mode string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
		Data: map[string]string{proxyconfig.ConfigMapKey: "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n" +
			"mode: " + mode + "\nipvs:\n  syncPeriod: 7s\n  tcpTimeout: 900s\n"},
	}
}

// TestProxySettingsMode: berth's proxy.mode wins over the ConfigMap, with
// the conflict logged naming both; the settings are the winning mode's
// (not the iptables ones under an IPVS backend, or the reverse).
func TestProxySettingsMode(t *testing.T) {
	for _, tc := range []struct {
		name         string
		berth        config.ProxyMode
		configMap    string
		want         proxyconfig.Mode
		wantSync     time.Duration
		wantConflict bool
		wantErr      error
	}{
		{"ConfigMap's mode followed", "", "ipvs", proxyconfig.ModeIPVS, 7 * time.Second, false, nil},
		{"berth's mode wins", config.ProxyModeIPTables, "ipvs", proxyconfig.ModeIPTables, 30 * time.Second, true, nil},
		{"berth's IPVS over an empty ConfigMap mode", config.ProxyModeIPVS, `""`, proxyconfig.ModeIPVS, 7 * time.Second, false, nil},
		{"ConfigMap's nftables falls back to iptables", "", "nftables", proxyconfig.ModeIPTables, 30 * time.Second, false, nil},
		{"berth's nftables stops the proxy", config.ProxyModeNFTables, "iptables", "", 0, false, proxyconfig.ErrModeUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lines []string
			log := funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{})
			ctx := klog.NewContext(context.Background(), log)
			cfg := config.Default()
			cfg.Proxy.Mode = tc.berth
			s, err := proxySettings(ctx, cfg, fake.NewClientset(kubeProxyConfigMap(tc.configMap)))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("proxySettings: err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if s.Mode != tc.want || s.SyncPeriod != tc.wantSync {
				t.Errorf("mode %s with sync period %v, want %s with %v", s.Mode, s.SyncPeriod, tc.want, tc.wantSync)
			}
			conflict := false
			for _, l := range lines {
				if strings.Contains(l, "Conflicting proxy modes") {
					conflict = strings.Contains(l, string(proxyconfig.SourceBerth)) && strings.Contains(l, string(proxyconfig.SourceConfigMap))
				}
			}
			if conflict != tc.wantConflict {
				t.Errorf("conflict naming both sources logged: %v, want %v; log:\n%s", conflict, tc.wantConflict, strings.Join(lines, "\n"))
			}
		})
	}
}

// TestApplyConntrack: the conntrack settings reach the kernel parameters
// and the hash size grows with the limit.
func TestApplyConntrack(t *testing.T) {
	proc, params := t.TempDir(), t.TempDir()
	for dir, files := range map[string]map[string]string{
		proc: {
			"net/netfilter/nf_conntrack_max":                      "65536",
			"net/netfilter/nf_conntrack_tcp_timeout_established": "432000",
			"net/netfilter/nf_conntrack_tcp_timeout_close_wait":  "60",
			"net/netfilter/nf_conntrack_tcp_be_liberal":          "0",
		},
		params: {"hashsize": "16384"},
	} {
		for name, v := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := proxyconfig.Conntrack{MaxPerCore: 32768, Min: 131072, TCPEstablishedTimeout: 24 * time.Hour, TCPCloseWaitTimeout: time.Hour, TCPBeLiberal: true}
	if err := applyConntrack(klog.Background(), sysctl.Root(proc), sysctl.Root(params), c, 4); err != nil {
		t.Fatal(err)
	}
	for root, want := range map[sysctl.Root]map[string]string{
		sysctl.Root(proc): {
			"net.netfilter.nf_conntrack_max": "131072", "net.netfilter.nf_conntrack_tcp_timeout_established": "86400",
			"net.netfilter.nf_conntrack_tcp_timeout_close_wait": "3600", "net.netfilter.nf_conntrack_tcp_be_liberal": "1",
		},
		sysctl.Root(params): {"hashsize": "32768"},
	} {
		for name, v := range want {
			if got, _ := root.Get(name); got != v {
				t.Errorf("%s = %q, want %q", name, got, v)
			}
		}
	}
	// Without the module's parameters nothing is set, and the log says so.
	var lines []string
	log := funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{})
	if err := applyConntrack(log, sysctl.Root(t.TempDir()), sysctl.Root(params), c, 4); err != nil {
		t.Errorf("no conntrack module: %v", err)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "nf_conntrack module is not loaded") {
		t.Errorf("no conntrack module: logged %q, want the reason the settings are not applied", lines)
	}
	// A parameter that cannot be written fails the start.
	if err := os.Remove(filepath.Join(proc, "net/netfilter/nf_conntrack_tcp_be_liberal")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(proc, "net/netfilter/nf_conntrack_tcp_be_liberal"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := applyConntrack(klog.Background(), sysctl.Root(proc), sysctl.Root(params), c, 4); err == nil {
		t.Error("unwritable tcp_be_liberal: no error")
	}
}
