package bootstrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/clock"
)

// testCA signs certificates for the tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// sign issues a client certificate for the request's public key.
func (ca *testCA) sign(t *testing.T, csrPEM []byte, notAfter time.Time) []byte {
	t.Helper()
	block, _ := pem.Decode(csrPEM)
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: req.Subject,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, req.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeBootstrapKubeconfig(t *testing.T, path string, ca []byte) {
	t.Helper()
	kc := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"c": {Server: "https://192.168.200.10:6443", CertificateAuthorityData: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"u": {Token: "abcdef.0123456789abcdef"}},
		Contexts:       map[string]*clientcmdapi.Context{"x": {Cluster: "c", AuthInfo: "u"}},
		CurrentContext: "x",
	}
	if err := clientcmd.WriteToFile(kc, path); err != nil {
		t.Fatal(err)
	}
}

func testConfig(t *testing.T) Config {
	dir := t.TempDir()
	return Config{
		NodeName:            "node1",
		Kubeconfig:          filepath.Join(dir, "kubelet.conf"),
		BootstrapKubeconfig: filepath.Join(dir, "bootstrap-kubelet.conf"),
		CertDir:             filepath.Join(dir, "pki"),
		Clock:               clock.RealClock{},
	}
}

// approveCSRs plays the CSR approver and signer: it issues a certificate
// to every CSR that appears, after checking what the kubelet must ask for.
func approveCSRs(ctx context.Context, t *testing.T, client *fake.Clientset, ca *testCA, notAfter time.Time) {
	for ctx.Err() == nil {
		list, err := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, csr := range list.Items {
				if len(csr.Status.Certificate) > 0 {
					continue
				}
				if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName {
					t.Errorf("CSR signer %q", csr.Spec.SignerName)
				}
				block, _ := pem.Decode(csr.Spec.Request)
				req, _ := x509.ParseCertificateRequest(block.Bytes)
				if req.Subject.CommonName != "system:node:node1" || len(req.Subject.Organization) != 1 || req.Subject.Organization[0] != "system:nodes" {
					t.Errorf("CSR subject %v, want CN system:node:node1, O system:nodes", req.Subject)
				}
				csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: v1.ConditionTrue}}
				csr.Status.Certificate = ca.sign(t, csr.Spec.Request, notAfter)
				if _, err := client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, &csr, metav1.UpdateOptions{}); err != nil {
					t.Errorf("issue certificate: %v", err)
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRequestCertificateAndWriteKubeconfig(t *testing.T) {
	cfg := testConfig(t)
	ca := newCA(t)
	writeBootstrapKubeconfig(t, cfg.BootstrapKubeconfig, ca.pem)
	client := fake.NewClientset()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	go approveCSRs(ctx, t, client, ca, time.Now().Add(time.Hour))

	boot, err := clientcmd.BuildConfigFromFlags("", cfg.BootstrapKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	store, err := newStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := requestCertificateWith(ctx, cfg, client, store); err != nil {
		t.Fatal(err)
	}
	if err := writeKubeconfig(cfg.Kubeconfig, boot, store.CurrentPath()); err != nil {
		t.Fatal(err)
	}
	// The kubeconfig points at kubelet-client-current.pem, a symlink to
	// the timestamped pair, as kubelet writes them.
	current := filepath.Join(cfg.CertDir, "kubelet-client-current.pem")
	target, err := os.Readlink(current)
	if err != nil || !strings.HasPrefix(filepath.Base(target), "kubelet-client-") {
		t.Fatalf("kubelet-client-current.pem -> %q, %v", target, err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if rc.CertFile != current || rc.KeyFile != current || rc.Host != boot.Host || string(rc.CAData) != string(ca.pem) {
		t.Errorf("node kubeconfig: cert %q key %q host %q; want %s twice and the bootstrap server and CA", rc.CertFile, rc.KeyFile, rc.Host, current)
	}
	// A second start uses it as it is: no new CSR.
	got, err := LoadClientConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got.CertFile != current {
		t.Errorf("second start uses %q", got.CertFile)
	}
	list, _ := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if len(list.Items) != 1 {
		t.Errorf("%d CSRs, want 1", len(list.Items))
	}
}

func TestExpiredCertificateIsNotUsed(t *testing.T) {
	cfg := testConfig(t)
	ca := newCA(t)
	writeBootstrapKubeconfig(t, cfg.BootstrapKubeconfig, ca.pem)
	client := fake.NewClientset()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// NotAfter is far enough ahead that a loaded machine still checks the
	// fresh certificate before it expires; expiry is checked at NotAfter.
	notAfter := time.Now().Add(time.Hour)
	go approveCSRs(ctx, t, client, ca, notAfter)
	store, err := newStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := requestCertificateWith(ctx, cfg, client, store); err != nil {
		t.Fatal(err)
	}
	boot, _ := clientcmd.BuildConfigFromFlags("", cfg.BootstrapKubeconfig)
	if err := writeKubeconfig(cfg.Kubeconfig, boot, store.CurrentPath()); err != nil {
		t.Fatal(err)
	}
	rc, _ := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if ok, _ := certValid(rc, time.Now()); !ok {
		t.Fatal("fresh certificate reported invalid")
	}
	if ok, why := certValid(rc, notAfter.Add(time.Second)); ok || !strings.Contains(why, "expired") {
		t.Errorf("certificate past NotAfter: valid %v (%s), want expired", ok, why)
	}
}

func TestValidate(t *testing.T) {
	err := (&Config{Kubeconfig: "relative"}).Validate()
	for _, want := range []string{"node name", `kubeconfig "relative"`, "clock"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}
