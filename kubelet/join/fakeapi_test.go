package join

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// The test token, and one the cluster does not know.
const (
	testTokenID     = "abcdef"
	testTokenSecret = "0123456789abcdef"
	testToken       = testTokenID + "." + testTokenSecret
)

// testCA is a CA with a key, to sign the test servers' certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for subject signed by ca: a server
// certificate for 127.0.0.1, or a node client certificate.
func (ca *testCA) issue(t *testing.T, commonName string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// signDetached signs content as the bootstrap signer does. It is checked
// against a signature computed with openssl in TestVerifyDetachedJWS.
func signDetached(content, id, secret string) string {
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"` + id + `"}`))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(header + "." + base64.RawURLEncoding.EncodeToString([]byte(content))))
	return header + ".." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// clusterInfoData returns the data of a cluster-info ConfigMap naming
// server and ca, signed for the given tokens (ID → secret).
func clusterInfoData(t *testing.T, server string, ca []byte, tokens map[string]string) map[string]string {
	t.Helper()
	kc, err := clientcmd.Write(clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: server, CertificateAuthorityData: ca},
	}})
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]string{clusterInfoKubeconfigKey: string(kc)}
	for id, secret := range tokens {
		data[clusterInfoSignaturePrefix+id] = signDetached(string(kc), id, secret)
	}
	return data
}

// fakeAPI is an API server that serves what join reads: cluster-info to
// anyone, kube-system ConfigMaps and nodes to the bootstrap token.
type fakeAPI struct {
	srv *httptest.Server
	ca  *testCA

	mu sync.Mutex
	// clusterInfo returns the data of cluster-info at its nth read
	// (from 1), or nil for none.
	clusterInfo func(n int) map[string]string
	// clusterInfoReads counts the reads of cluster-info.
	clusterInfoReads int
	// configMaps are the kube-system ConfigMaps' data, by name.
	configMaps map[string]map[string]string
	// nodes are the cluster's nodes, by name.
	nodes map[string]*v1.Node
	// token is the accepted bearer token.
	token string
}

// newFakeAPI starts a fake API server with a certificate signed by ca and
// a kubeadm cluster's configuration, whose cluster-info is signed for the
// test token.
func newFakeAPI(t *testing.T, ca *testCA) *fakeAPI {
	t.Helper()
	f := &fakeAPI{ca: ca, token: testToken, nodes: map[string]*v1.Node{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "kube-apiserver", true)}}
	// Handshakes that fail on purpose would clutter the output.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	info := clusterInfoData(t, f.srv.URL, ca.pem, map[string]string{testTokenID: testTokenSecret, "zzzzzz": "zzzzzzzzzzzzzzzz"})
	f.clusterInfo = func(int) map[string]string { return info }
	f.configMaps = map[string]map[string]string{
		kubeletConfigMap: {kubeletConfigKey: testKubeletConfig},
		kubeadmConfigMap: {clusterConfigKey: testClusterConfig},
	}
	return f
}

// endpoint returns the server's host:port.
func (f *fakeAPI) endpoint() string { return strings.TrimPrefix(f.srv.URL, "https://") }

// reads returns how often cluster-info was read.
func (f *fakeAPI) reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clusterInfoReads
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := r.URL.Path
	if path == "/api/v1/namespaces/kube-public/configmaps/cluster-info" {
		f.clusterInfoReads++
		data := f.clusterInfo(f.clusterInfoReads)
		if data == nil {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound)
			return
		}
		writeObject(w, &v1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "cluster-info", Namespace: "kube-public"}, Data: data})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized)
		return
	}
	if name, ok := strings.CutPrefix(path, "/api/v1/namespaces/kube-system/configmaps/"); ok {
		data, ok := f.configMaps[name]
		if !ok {
			writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound)
			return
		}
		writeObject(w, &v1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"}, Data: data})
		return
	}
	if name, ok := strings.CutPrefix(path, "/api/v1/nodes/"); ok {
		if node, ok := f.nodes[name]; ok {
			writeObject(w, node)
			return
		}
	}
	writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound)
}

func writeObject(w http.ResponseWriter, obj any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(obj)
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(&metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Reason: reason, Code: int32(code)})
}

// testConfig returns a configuration that joins f's cluster, pinning ca,
// with its files in a temporary folder.
func testConfig(t *testing.T, f *fakeAPI, ca *testCA) Config {
	t.Helper()
	return Config{
		APIEndpoint:   f.endpoint(),
		Token:         testToken,
		CACertHashes:  []string{CACertHash(ca.cert)},
		NodeName:      "node1",
		Hostname:      "node1",
		CRISocket:     "unix:///run/containerd/containerd.sock",
		Paths:         DefaultPaths(t.TempDir()),
		Clock:         clock.RealClock{},
		Timeout:       time.Minute,
		RetryInterval: time.Second,
	}
}

// joinWithFakeClock runs Join on a fake clock that moves on whenever Join
// waits, so that retries and timeouts take no time.
func joinWithFakeClock(t *testing.T, cfg Config) (*Result, error) {
	t.Helper()
	fc := clocktesting.NewFakeClock(time.Now())
	cfg.Clock = fc
	type result struct {
		res *Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		_, ctx := ktesting.NewTestContext(t)
		res, err := Join(ctx, cfg)
		done <- result{res, err}
	}()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			return r.res, r.err
		case <-tick.C:
			if fc.HasWaiters() {
				fc.Step(cfg.retryInterval())
			}
		}
	}
}

// testKubeletConfig is a kubelet-config ConfigMap's document as kubeadm
// init uploads it (abridged).
const testKubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
failCgroupV1: false
kind: KubeletConfiguration
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
`

// testClusterConfig is a kubeadm-config ConfigMap's ClusterConfiguration.
const testClusterConfig = `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: berth-test
certificatesDir: /etc/kubernetes/pki
kubernetesVersion: v1.37.2
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
`
