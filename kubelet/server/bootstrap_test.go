package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authnv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServerTLSBootstrap(t *testing.T) {
	api := newFakeAPI()
	api.tokens["t"] = authnv1.UserInfo{Username: "kube-apiserver"}
	ca := newTestCA(t, "kubernetes")
	dir := filepath.Join(t.TempDir(), "pki")
	cfg := Config{
		Address: "127.0.0.1", Port: 10250, NodeName: "node1",
		TLS:            ServingCert{Dir: dir, Bootstrap: true, Hostname: "localhost", IPs: []net.IP{net.ParseIP("127.0.0.1")}},
		Authentication: Authentication{Webhook: true, CacheTTL: time.Minute},
		Authorization:  Authorization{Mode: ModeAlwaysAllow},
		Client:         api.client,
		Clock:          clocktesting.NewFakeClock(time.Now()),
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	dial := func() (*tls.Conn, error) {
		return tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost"})
	}
	if conn, err := dial(); err == nil {
		conn.Close()
		t.Fatal("handshake succeeded before a certificate was issued")
	}

	csrs := api.client.CertificatesV1().CertificateSigningRequests()
	var csr certificatesv1.CertificateSigningRequest
	waitFor(t, "the serving CSR", func() bool {
		list, err := csrs.List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) == 0 {
			return false
		}
		csr = list.Items[0]
		return true
	})
	checkServingCSR(t, &csr)
	if conn, err := dial(); err == nil {
		conn.Close()
		t.Fatal("handshake succeeded while the CSR is pending")
	}

	approve(t, api.client, &csr, ca)

	var conn *tls.Conn
	waitFor(t, "a handshake with the issued certificate", func() bool {
		conn, err = dial()
		return err == nil
	})
	if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "system:node:node1" {
		t.Errorf("served certificate for %q", cn)
	}
	conn.Close()
	if _, err := os.Stat(filepath.Join(dir, "kubelet-server-current.pem")); err != nil {
		t.Errorf("issued pair not stored: %v", err)
	}
}

// approve plays the approver and the signer of csr.
func approve(t *testing.T, client *fake.Clientset, csr *certificatesv1.CertificateSigningRequest, ca *testCA) {
	t.Helper()
	block, _ := pem.Decode(csr.Spec.Request)
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der := ca.issue(t, &x509.Certificate{
		Subject: req.Subject, DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, req.PublicKey)
	csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: certificatesv1.CertificateApproved, Status: v1.ConditionTrue}}
	csr.Status.Certificate = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if _, err := client.CertificatesV1().CertificateSigningRequests().UpdateStatus(t.Context(), csr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func checkServingCSR(t *testing.T, csr *certificatesv1.CertificateSigningRequest) {
	t.Helper()
	if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName {
		t.Errorf("CSR signer %q", csr.Spec.SignerName)
	}
	wantUsages := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
	if diff := cmp.Diff(wantUsages, csr.Spec.Usages); diff != "" {
		t.Errorf("CSR usages (-want +got):\n%s", diff)
	}
	block, _ := pem.Decode(csr.Spec.Request)
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	got := struct {
		CN       string
		O, DNS   []string
		IPs      []string
		ECDSAKey bool
	}{CN: req.Subject.CommonName, O: req.Subject.Organization, DNS: req.DNSNames}
	for _, ip := range req.IPAddresses {
		got.IPs = append(got.IPs, ip.String())
	}
	got.ECDSAKey = req.PublicKeyAlgorithm == x509.ECDSA
	want := got
	want.CN, want.O, want.DNS, want.IPs, want.ECDSAKey = "system:node:node1", []string{"system:nodes"}, []string{"localhost"}, []string{"127.0.0.1"}, true
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CSR request (-want +got):\n%s", diff)
	}
}

func TestServingTemplateHostnameAsIP(t *testing.T) {
	tmpl := servingTemplate("node1", "192.168.200.11", []net.IP{net.ParseIP("fd00::11")})
	var ips []string
	for _, ip := range tmpl.IPAddresses {
		ips = append(ips, ip.String())
	}
	if diff := cmp.Diff([]string{"fd00::11", "192.168.200.11"}, ips); diff != "" || len(tmpl.DNSNames) != 0 {
		t.Errorf("IPs (-want +got):\n%s\nDNS names %v", diff, tmpl.DNSNames)
	}
}

func TestPendingCSRs(t *testing.T) {
	mk := func(name, signer, user string, conds ...certificatesv1.RequestConditionType) *certificatesv1.CertificateSigningRequest {
		csr := &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       certificatesv1.CertificateSigningRequestSpec{SignerName: signer, Username: user},
		}
		for _, c := range conds {
			csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{Type: c, Status: v1.ConditionTrue})
		}
		return csr
	}
	client := fake.NewClientset(
		mk("csr-b", certificatesv1.KubeletServingSignerName, "system:node:node1"),
		mk("csr-a", certificatesv1.KubeletServingSignerName, "system:node:node1"),
		mk("csr-approved", certificatesv1.KubeletServingSignerName, "system:node:node1", certificatesv1.CertificateApproved),
		mk("csr-denied", certificatesv1.KubeletServingSignerName, "system:node:node1", certificatesv1.CertificateDenied),
		mk("csr-other-node", certificatesv1.KubeletServingSignerName, "system:node:node2"),
		mk("csr-client", certificatesv1.KubeAPIServerClientKubeletSignerName, "system:node:node1"),
	)
	w := &csrWatcher{client: client, nodeName: "node1"}
	got, err := w.pendingCSRs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"csr-a", "csr-b"}, got); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
}

func TestRenewing(t *testing.T) {
	start := time.Now()
	leaf := &x509.Certificate{NotBefore: start, NotAfter: start.Add(100 * time.Hour)}
	for _, tt := range []struct {
		at   time.Duration
		want bool
	}{{0, false}, {69 * time.Hour, false}, {70 * time.Hour, true}, {99 * time.Hour, true}} {
		if got := renewing(leaf, start.Add(tt.at)); got != tt.want {
			t.Errorf("renewing at %s: %v, want %v", tt.at, got, tt.want)
		}
	}
}
