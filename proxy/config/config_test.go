package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"k8s.io/utils/ptr"
)

var cmpNet = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// defaults are the Settings of an empty configuration: kube-proxy's
// defaults.
func defaults() Settings {
	return Settings{
		Mode:               ModeIPTables,
		HealthzBindAddress: "0.0.0.0:10256",
		MetricsBindAddress: "127.0.0.1:10249",
		MinSyncPeriod:      time.Second,
		SyncPeriod:         30 * time.Second,
		MasqueradeBit:      14,
		LocalhostNodePorts: true,
		Conntrack: Conntrack{MaxPerCore: 32 * 1024, Min: 128 * 1024,
			TCPEstablishedTimeout: 24 * time.Hour, TCPCloseWaitTimeout: time.Hour},
		IPVS: IPVS{Scheduler: "rr"},
	}
}

func clusterConfigMap(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("testdata/kubeadm-configmap.conf")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{ConfigMapKey: string(data), "kubeconfig.conf": "ignored"}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	wrongKind := filepath.Join(dir, "kind.yaml")
	if err := os.WriteFile(wrongKind, []byte("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		want    *KubeProxyConfiguration
		wantErr error
	}{{
		name: "sets only what it says",
		path: "testdata/berth.yaml",
		want: &KubeProxyConfiguration{
			TypeMeta:           metav1.TypeMeta{APIVersion: "kubeproxy.config.k8s.io/v1alpha1", Kind: Kind},
			Mode:               "ipvs",
			IPVS:               ipvs("wrr", 45*time.Second, 2*time.Second),
			NodePortAddresses:  []string{"primary", "192.168.0.0/16"},
			MetricsBindAddress: "0.0.0.0",
			FeatureGates:       map[string]bool{"SomeGate": true},
		},
	}, {
		name:    "a misspelt field is an error",
		path:    "testdata/typo.yaml",
		wantErr: errAny,
	}, {
		name:    "wrong kind",
		path:    wrongKind,
		wantErr: errAny,
	}, {
		name:    "missing",
		path:    filepath.Join(dir, "none.yaml"),
		wantErr: fs.ErrNotExist,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.path)
			checkErr(t, err, tt.wantErr)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("Load (-want +got):\n%s", diff)
			}
		})
	}
}

// errAny stands for any error in tables.
var errAny = errors.New("any error")

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && err == nil:
		t.Fatalf("no error, want %v", want)
	case want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}

func ipvs(scheduler string, sync, minSync time.Duration) kubeproxyv1alpha1.KubeProxyIPVSConfiguration {
	return kubeproxyv1alpha1.KubeProxyIPVSConfiguration{Scheduler: scheduler, SyncPeriod: metav1.Duration{Duration: sync}, MinSyncPeriod: metav1.Duration{Duration: minSync}}
}

func TestFromConfigMap(t *testing.T) {
	cfg, err := FromConfigMap(clusterConfigMap(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{cfg.ClusterCIDR, cfg.ClientConnection.Kubeconfig}; !cmp.Equal(got, []string{"10.244.0.0/16,fd00:244::/56", "/var/lib/kube-proxy/kubeconfig.conf"}) {
		t.Errorf("decoded %v", got)
	}
	if _, err := FromConfigMap(map[string]string{"other": ""}); !errors.Is(err, ErrNoConfig) {
		t.Errorf("missing key: %v, want ErrNoConfig", err)
	}
	lenient := map[string]string{ConfigMapKey: "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nfutureField: 1\n"}
	if _, err := FromConfigMap(lenient); err != nil {
		t.Errorf("unknown field in the ConfigMap: %v", err)
	}
}

func TestMergeThenResolve(t *testing.T) {
	file, err := Load("testdata/berth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := FromConfigMap(clusterConfigMap(t))
	if err != nil {
		t.Fatal(err)
	}
	cluster.IPTables.MasqueradeAll = true
	cluster.IPVS.Scheduler = "lc"
	cluster.FeatureGates = map[string]bool{"SomeGate": false, "OtherGate": true}
	merged := Merge(file, cluster)
	if cluster.IPVS.Scheduler != "lc" || file.ClusterCIDR != "" {
		t.Fatal("Merge modified its arguments")
	}
	if diff := cmp.Diff(map[string]bool{"SomeGate": true, "OtherGate": true}, merged.FeatureGates); diff != "" {
		t.Errorf("feature gates (-want +got):\n%s", diff)
	}
	got, err := Resolve(merged)
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Mode = ModeIPVS
	want.IPVS.Scheduler = "wrr" // the file wins
	want.SyncPeriod, want.MinSyncPeriod = 45*time.Second, 2*time.Second
	want.MetricsBindAddress = "0.0.0.0:10249" // port appended
	want.MasqueradeAll = true                 // from the cluster
	want.ClusterCIDRs = prefixes("10.244.0.0/16", "fd00:244::/56")
	want.NodePortAddresses = prefixes("192.168.0.0/16")
	want.NodePortPrimary = true
	if diff := cmp.Diff(&want, got, cmpNet); diff != "" {
		t.Fatalf("Settings (-want +got):\n%s", diff)
	}
	if got.MasqueradeMark() != 0x4000 {
		t.Errorf("MasqueradeMark %#x, want 0x4000", got.MasqueradeMark())
	}
}

func TestMergeNil(t *testing.T) {
	if got := Merge(nil, nil); got == nil {
		t.Fatal("Merge(nil, nil) = nil")
	}
	cluster := &KubeProxyConfiguration{ClusterCIDR: "10.0.0.0/8"}
	if got := Merge(nil, cluster); got.ClusterCIDR != "10.0.0.0/8" {
		t.Errorf("Merge(nil, cluster).ClusterCIDR = %q", got.ClusterCIDR)
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *KubeProxyConfiguration
		want    func(*Settings)
		wantErr bool
	}{
		{name: "nil is all defaults", want: func(*Settings) {}},
		{name: "IPv6 bind address", cfg: &KubeProxyConfiguration{BindAddress: "::"}, want: func(s *Settings) {
			s.HealthzBindAddress, s.MetricsBindAddress = "[::]:10256", "[::1]:10249"
		}},
		{name: "nftables takes its own fields", cfg: &KubeProxyConfiguration{Mode: "nftables",
			NFTables: kubeproxyv1alpha1.KubeProxyNFTablesConfiguration{MasqueradeAll: true, MasqueradeBit: ptr.To[int32](3), SyncPeriod: metav1.Duration{Duration: time.Minute}}},
			want: func(s *Settings) {
				s.Mode, s.MasqueradeAll, s.MasqueradeBit, s.SyncPeriod = ModeNFTables, true, 3, time.Minute
			}},
		{name: "keywords", cfg: &KubeProxyConfiguration{NodePortAddresses: []string{"localhost", "all"}}, want: func(s *Settings) {
			s.NodePortAddresses = prefixes("127.0.0.0/8", "::1/128", "0.0.0.0/0", "::/0")
		}},
		{name: "explicit conntrack", cfg: &KubeProxyConfiguration{Conntrack: kubeproxyv1alpha1.KubeProxyConntrackConfiguration{
			MaxPerCore: ptr.To[int32](0), UDPTimeout: metav1.Duration{Duration: 30 * time.Second}}},
			want: func(s *Settings) { s.Conntrack.MaxPerCore, s.Conntrack.UDPTimeout = 0, 30*time.Second }},
		{name: "unknown mode", cfg: &KubeProxyConfiguration{Mode: "kernelspace"}, wantErr: true},
		{name: "masquerade bit out of range", cfg: &KubeProxyConfiguration{IPTables: kubeproxyv1alpha1.KubeProxyIPTablesConfiguration{MasqueradeBit: ptr.To[int32](32)}}, wantErr: true},
		{name: "min sync above sync", cfg: &KubeProxyConfiguration{IPTables: kubeproxyv1alpha1.KubeProxyIPTablesConfiguration{
			MinSyncPeriod: metav1.Duration{Duration: time.Hour}}}, wantErr: true},
		{name: "bad clusterCIDR", cfg: &KubeProxyConfiguration{ClusterCIDR: "10.0.0.0/40"}, wantErr: true},
		{name: "two IPv4 clusterCIDRs", cfg: &KubeProxyConfiguration{ClusterCIDR: "10.0.0.0/8,10.1.0.0/16"}, wantErr: true},
		{name: "unsupported detectLocalMode", cfg: &KubeProxyConfiguration{DetectLocalMode: "BridgeInterface"}, wantErr: true},
		{name: "bad nodePortAddresses", cfg: &KubeProxyConfiguration{NodePortAddresses: []string{"eth0"}}, wantErr: true},
		{name: "bad scheduler", cfg: &KubeProxyConfiguration{IPVS: kubeproxyv1alpha1.KubeProxyIPVSConfiguration{Scheduler: "random"}}, wantErr: true},
		{name: "bad healthz address", cfg: &KubeProxyConfiguration{HealthzBindAddress: "localhost:99999"}, wantErr: true},
		{name: "negative conntrack", cfg: &KubeProxyConfiguration{Conntrack: kubeproxyv1alpha1.KubeProxyConntrackConfiguration{Min: ptr.To[int32](-1)}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Resolve succeeded: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tt.want(&want)
			if diff := cmp.Diff(&want, got, cmpNet, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("Settings (-want +got):\n%s", diff)
			}
		})
	}
}
