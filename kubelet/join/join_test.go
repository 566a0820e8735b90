package join

import (
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2/ktesting"

	kubeletconfig "github.com/berthnode/berth/kubelet/config"
)

func TestJoinWritesNodeFiles(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	f := newFakeAPI(t, ca)
	cfg := testConfig(t, f, ca)
	cfg.Hostname = "host1"
	cfg.NodeIP = "192.168.200.11"
	cfg.KubeletExtraArgs = []string{"cgroup-root=/berth/node1"}
	_, ctx := ktesting.NewTestContext(t)
	res, err := Join(ctx, cfg)
	if err != nil {
		t.Fatalf("Join() = %v", err)
	}
	p := cfg.Paths
	want := &Result{
		Server: f.srv.URL, CACertHash: CACertHash(ca.cert), ClusterName: "berth-test", NodeName: "node1",
		Written: []string{p.CACert, p.BootstrapKubeconfig, p.KubeadmFlags, p.InstanceConfig, p.KubeletConfig},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("Join() (-want +got):\n%s", diff)
	}
	assertFile(t, p.CACert, string(ca.pem), 0o644)
	assertFile(t, p.InstanceConfig, "containerRuntimeEndpoint: \"unix:///run/containerd/containerd.sock\"\n", 0o644)
	assertFile(t, p.KubeadmFlags, `KUBELET_KUBEADM_ARGS="--hostname-override=node1 --node-ip=192.168.200.11 --cgroup-root=/berth/node1"`+"\n", 0o644)

	// The bootstrap kubeconfig is kubeadm's: cluster named after the
	// cluster, context and user after the bootstrap user.
	assertMode(t, p.BootstrapKubeconfig, 0o600)
	kc, err := clientcmd.LoadFromFile(p.BootstrapKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	wantKC := &clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"berth-test": {Server: f.srv.URL, CertificateAuthorityData: ca.pem}},
		Contexts:       map[string]*clientcmdapi.Context{"tls-bootstrap-token-user@kubernetes": {Cluster: "berth-test", AuthInfo: "tls-bootstrap-token-user"}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"tls-bootstrap-token-user": {Token: testToken}},
		CurrentContext: "tls-bootstrap-token-user@kubernetes",
	}
	ignoreOrigin := cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".LocationOfOrigin" || p.Last().String() == ".Extensions" || p.Last().String() == ".Preferences"
	}, cmp.Ignore())
	if diff := cmp.Diff(wantKC, kc, ignoreOrigin); diff != "" {
		t.Errorf("bootstrap kubeconfig (-want +got):\n%s", diff)
	}

	// berth reads what join wrote.
	kcfg, _, err := kubeletconfig.Compose(p.KubeletConfig, kubeletconfig.Flags{}, kubeletconfig.Fallbacks{})
	if err != nil {
		t.Fatalf("berth cannot read the kubelet configuration: %v", err)
	}
	if kcfg.ContainerRuntimeEndpoint != "unix:///run/containerd/containerd.sock" || kcfg.CgroupDriver != "cgroupfs" || kcfg.ClusterDomain != "cluster.local" {
		t.Errorf("kubelet configuration = %+v, want the cluster's with the node's runtime", kcfg)
	}
	args, err := kubeletconfig.ReadKubeadmFlags(p.KubeadmFlags)
	if err != nil {
		t.Fatal(err)
	}
	flags, _, err := kubeletconfig.ParseFlags(args)
	if err != nil {
		t.Fatalf("berth cannot parse kubeadm-flags.env: %v", err)
	}
	if flags.HostnameOverride != "node1" || !cmp.Equal(flags.NodeIPs, []string{"192.168.200.11"}) {
		t.Errorf("kubeadm flags = %+v", flags)
	}
}

func TestJoinClusterConfiguration(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	tests := []struct {
		name string
		// configMaps replace the fake cluster's kube-system ConfigMaps.
		configMaps map[string]map[string]string
		// token replaces the token the API server accepts.
		token string
		is    error
		// cluster is the cluster name wanted.
		cluster string
	}{
		{
			name:       "no kubelet-config",
			configMaps: map[string]map[string]string{kubeadmConfigMap: {clusterConfigKey: testClusterConfig}},
			is:         ErrNoKubeletConfig,
		},
		{
			name:       "kubelet-config without its key",
			configMaps: map[string]map[string]string{kubeletConfigMap: {"kubelet.yaml": testKubeletConfig}},
			is:         ErrNoKubeletConfig,
		},
		{
			name:       "kubelet-config of another kind",
			configMaps: map[string]map[string]string{kubeletConfigMap: {kubeletConfigKey: "apiVersion: v1\nkind: ConfigMap\n"}},
			is:         ErrNoKubeletConfig,
		},
		{
			name:       "bad kubeadm-config",
			configMaps: map[string]map[string]string{kubeletConfigMap: {kubeletConfigKey: testKubeletConfig}, kubeadmConfigMap: {clusterConfigKey: "kind: Pod\n"}},
			is:         errAny,
		},
		{
			name:       "no kubeadm-config",
			configMaps: map[string]map[string]string{kubeletConfigMap: {kubeletConfigKey: testKubeletConfig}},
			cluster:    "kubernetes",
		},
		{name: "token rejected", token: "other0.0123456789abcdef", is: ErrTokenRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, ca)
			if tt.configMaps != nil {
				f.configMaps = tt.configMaps
			}
			if tt.token != "" {
				f.token = tt.token
			}
			cfg := testConfig(t, f, ca)
			res, err := joinWithFakeClock(t, cfg)
			switch {
			case tt.is == errAny && err != nil:
				assertNothingWritten(t, cfg.Paths)
			case tt.is != nil:
				if !errors.Is(err, tt.is) {
					t.Fatalf("Join() = %v, want %v", err, tt.is)
				}
				assertNothingWritten(t, cfg.Paths)
			case err != nil:
				t.Fatalf("Join() = %v", err)
			case res.ClusterName != tt.cluster:
				t.Errorf("cluster name %q, want %q", res.ClusterName, tt.cluster)
			}
		})
	}
}

// errAny stands for any error in test tables.
var errAny = errors.New("any error")

func TestJoinNodeWithCredentials(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	other := newTestCA(t, "another CA")
	ready := &v1.Node{TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "node1"},
		Status: v1.NodeStatus{Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}}}}
	notReady := ready.DeepCopy()
	notReady.Status.Conditions[0].Status = v1.ConditionUnknown
	tests := []struct {
		name string
		// kubeletConf: the CA and node of an existing kubelet.conf.
		kubeletConf *testCA
		identity    string
		// caCrt is an existing ca.crt.
		caCrt []byte
		node  *v1.Node
		force bool
		is    error
		// removed are the files (base names) a forced join removes.
		removed  []string
		rejoined bool
	}{
		{name: "fresh node"},
		{name: "NotReady node of that name", node: notReady},
		{name: "Ready node of that name", node: ready, is: ErrNodeExists},
		{name: "Ready node of that name, forced", node: ready, force: true},
		{name: "same cluster and node: rejoin", kubeletConf: ca, identity: "node1", node: ready, caCrt: ca.pem, rejoined: true},
		{name: "same cluster, other node", kubeletConf: ca, identity: "node7", is: ErrOtherNode},
		{name: "same cluster, other node, forced", kubeletConf: ca, identity: "node7", force: true, removed: []string{"kubelet.conf", clientCertLink}},
		{name: "other cluster", kubeletConf: other, identity: "node1", is: ErrOtherCluster},
		{name: "other cluster, forced", kubeletConf: other, identity: "node1", caCrt: other.pem, force: true, removed: []string{"kubelet.conf", clientCertLink}},
		{name: "other cluster's CA file", caCrt: other.pem, is: ErrOtherCluster},
		{name: "unreadable CA file", caCrt: []byte("garbage"), is: ErrOtherCluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, ca)
			if tt.node != nil {
				f.nodes["node1"] = tt.node
			}
			cfg := testConfig(t, f, ca)
			cfg.Force = tt.force
			if tt.kubeletConf != nil {
				writeNodeKubeconfig(t, cfg.Paths, tt.kubeletConf, tt.identity)
			}
			if tt.caCrt != nil {
				writeTestFile(t, cfg.Paths.CACert, tt.caCrt)
			}
			_, ctx := ktesting.NewTestContext(t)
			res, err := Join(ctx, cfg)
			if tt.is != nil {
				if !errors.Is(err, tt.is) {
					t.Fatalf("Join() = %v, want %v", err, tt.is)
				}
				if _, err := os.Stat(cfg.Paths.KubeletConfig); err == nil {
					t.Error("kubelet configuration written, want nothing written")
				}
				return
			}
			if err != nil {
				t.Fatalf("Join() = %v", err)
			}
			var removed []string
			for _, p := range res.Removed {
				removed = append(removed, filepath.Base(p))
				if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s still there", p)
				}
			}
			if !cmp.Equal(tt.removed, removed) || res.Rejoined != tt.rejoined {
				t.Errorf("Join() removed %v, rejoined %v; want %v, %v", removed, res.Rejoined, tt.removed, tt.rejoined)
			}
			assertFile(t, cfg.Paths.CACert, string(ca.pem), 0o644)
		})
	}
}

// writeNodeKubeconfig writes a kubelet.conf as kubelet's TLS bootstrap
// does, for node identity (system:node:<identity>) trusting ca, and its
// certificate link.
func writeNodeKubeconfig(t *testing.T, p Paths, ca *testCA, identity string) {
	t.Helper()
	pair := ca.issue(t, "system:node:"+identity, false)
	pairFile := filepath.Join(p.CertDir, "kubelet-client-2026-01-01-00-00-00.pem")
	writeTestFile(t, pairFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pair.Certificate[0]}))
	if err := os.Symlink(filepath.Base(pairFile), filepath.Join(p.CertDir, clientCertLink)); err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"default-cluster": {Server: "https://192.168.200.10:6443", CertificateAuthorityData: ca.pem}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"default-auth": {ClientCertificate: filepath.Join(p.CertDir, clientCertLink), ClientKey: filepath.Join(p.CertDir, clientCertLink)}},
		Contexts:       map[string]*clientcmdapi.Context{"default-context": {Cluster: "default-cluster", AuthInfo: "default-auth"}},
		CurrentContext: "default-context",
	}
	if err := os.MkdirAll(filepath.Dir(p.KubeletKubeconfig), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.WriteToFile(kc, p.KubeletKubeconfig); err != nil {
		t.Fatal(err)
	}
}

func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// assertFile checks a file's content and permissions.
func assertFile(t *testing.T, path, want string, perm fs.FileMode) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(data)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
	assertMode(t, path, perm)
}

func assertMode(t *testing.T, path string, perm fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != perm {
		t.Errorf("%s has mode %v, want %v", path, st.Mode().Perm(), perm)
	}
}
