package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// testCA issues certificates for the tests.
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
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// writeFile writes the CA bundle in dir and returns its path.
func (ca *testCA) writeFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(p, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue signs a certificate for pub from tmpl's subject, names and usages.
func (ca *testCA) issue(t *testing.T, tmpl *x509.Certificate, pub any) []byte {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Minute)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// clientCert returns a client certificate pair for cn in orgs.
func (ca *testCA) clientCert(t *testing.T, cn string, orgs ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: orgs},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, key.Public())
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// fakeAPI plays the API server's review endpoints and counts the reviews.
type fakeAPI struct {
	client *fake.Clientset

	mu sync.Mutex
	// tokens maps the tokens it knows to their users.
	tokens map[string]authnv1.UserInfo
	// allow decides access reviews; nil denies all.
	allow func(authzv1.SubjectAccessReviewSpec) bool
	// sarErr fails access reviews.
	sarErr error
	// tokenReviews and sars are the reviews asked for.
	tokenReviews []string
	sars         []authzv1.SubjectAccessReviewSpec
}

func newFakeAPI() *fakeAPI {
	f := &fakeAPI{client: fake.NewClientset(), tokens: map[string]authnv1.UserInfo{}}
	f.client.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		tr := action.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.tokenReviews = append(f.tokenReviews, tr.Spec.Token)
		if u, ok := f.tokens[tr.Spec.Token]; ok {
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: u}
		} else {
			tr.Status = authnv1.TokenReviewStatus{Error: "token not found"}
		}
		return true, tr, nil
	})
	f.client.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		sar := action.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.sars = append(f.sars, sar.Spec)
		if f.sarErr != nil {
			return true, nil, f.sarErr
		}
		sar.Status.Allowed = f.allow != nil && f.allow(sar.Spec)
		return true, sar, nil
	})
	return f
}

func (f *fakeAPI) counts() (tokenReviews, sars int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tokenReviews), len(f.sars)
}

func (f *fakeAPI) lastSARs(n int) []authzv1.SubjectAccessReviewSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]authzv1.SubjectAccessReviewSpec(nil), f.sars[len(f.sars)-n:]...)
}

// allowSubresources allows user every verb on the given subresources of
// nodes/node1.
func allowSubresources(user string, subs ...string) func(authzv1.SubjectAccessReviewSpec) bool {
	return func(s authzv1.SubjectAccessReviewSpec) bool {
		ra := s.ResourceAttributes
		if s.User != user || ra == nil || ra.Resource != "nodes" || ra.Name != "node1" {
			return false
		}
		for _, sub := range subs {
			if ra.Subresource == sub {
				return true
			}
		}
		return false
	}
}

var errAPIDown = errors.New("connection refused")

// spy is a handler that counts its calls.
type spy struct {
	mu    sync.Mutex
	paths []string
	// headers are the Authorization headers it saw.
	headers []string
}

func (s *spy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.paths = append(s.paths, r.URL.Path)
	s.headers = append(s.headers, r.Header.Get("Authorization"))
	s.mu.Unlock()
	_, _ = w.Write([]byte("spy " + r.URL.Path))
}

func (s *spy) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.paths)
}

// fixture is a server under test with its fakes.
type fixture struct {
	api   *fakeAPI
	ca    *testCA
	clock *clocktesting.FakeClock
	spy   *spy
	srv   *Server
	ts    *httptest.Server
}

// newFixture serves a kubelet API with Webhook authentication and
// authorization, every handler a spy, changed by mutate before New.
func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{
		api:   newFakeAPI(),
		ca:    newTestCA(t, "kubernetes"),
		clock: clocktesting.NewFakeClock(time.Now()),
		spy:   &spy{},
	}
	cfg := Config{
		Address:  "127.0.0.1",
		Port:     10250,
		NodeName: "node1",
		TLS:      ServingCert{Dir: filepath.Join(dir, "pki"), Hostname: "localhost", IPs: []net.IP{net.ParseIP("127.0.0.1")}},
		Authentication: Authentication{
			ClientCAFile: f.ca.writeFile(t, dir),
			Webhook:      true,
			CacheTTL:     2 * time.Minute,
		},
		Authorization: Authorization{Mode: ModeWebhook, CacheAuthorizedTTL: 5 * time.Minute, CacheUnauthorizedTTL: 30 * time.Second},
		Client:        f.api.client,
		Clock:         f.clock,
		Handlers: Handlers{
			RunningPods: f.spy, Logs: f.spy, Streaming: f.spy, Stats: f.spy, Metrics: f.spy,
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	f.ts = httptest.NewUnstartedServer(srv.Handler())
	f.ts.TLS = srv.TLSConfig().Clone()
	f.ts.StartTLS()
	t.Cleanup(f.ts.Close)
	return f
}

// client returns an HTTPS client trusting the server, presenting certs.
func (f *fixture) client(t *testing.T, certs ...tls.Certificate) *http.Client {
	t.Helper()
	leaf, err := f.srv.TLSConfig().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf.Leaf)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, Certificates: certs, ServerName: "localhost",
	}}}
}

// do sends method path with the bearer token (none if empty) and returns
// the status and body.
func (f *fixture) do(t *testing.T, c *http.Client, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
