package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
)

// endpoint is one request to the kubelet API and the subresources it is
// authorized against.
type endpoint struct {
	method, path string
	subs         []string
}

var endpoints = []endpoint{
	{"GET", "/pods", []string{"pods", "proxy"}},
	{"GET", "/runningpods/", []string{"pods", "proxy"}},
	{"GET", "/healthz", []string{"healthz", "proxy"}},
	{"GET", "/configz", []string{"configz", "proxy"}},
	{"GET", "/stats/summary", []string{"stats"}},
	{"GET", "/metrics", []string{"metrics"}},
	{"GET", "/metrics/resource", []string{"metrics"}},
	{"GET", "/containerLogs/default/web/nginx", []string{"proxy"}},
	{"POST", "/exec/default/web/nginx", []string{"proxy"}},
	{"GET", "/attach/default/web/nginx", []string{"proxy"}},
	{"POST", "/portForward/default/web", []string{"proxy"}},
	{"POST", "/run/default/web/nginx", []string{"proxy"}},
	{"GET", "/logs/", []string{"log"}},
	{"GET", "/nowhere", []string{"proxy"}},
}

// countingConfig counts how often /configz shows it.
type countingConfig struct{ n *atomic.Int32 }

func (c countingConfig) MarshalJSON() ([]byte, error) {
	c.n.Add(1)
	return []byte(`{"port":10250}`), nil
}

// inner counts the calls of every handler of a fixture.
type inner struct {
	pods, healthz, configz atomic.Int32
}

func (i *inner) total(f *fixture) int {
	return f.spy.calls() + int(i.pods.Load()+i.healthz.Load()+i.configz.Load())
}

func (i *inner) set(cfg *Config) {
	cfg.Handlers.Pods = func() []*v1.Pod {
		i.pods.Add(1)
		return []*v1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}}}
	}
	cfg.Handlers.Healthz = func() error { i.healthz.Add(1); return nil }
	cfg.Handlers.Configz = countingConfig{n: &i.configz}
}

func TestRefusedWithoutCredentials(t *testing.T) {
	var in inner
	f := newFixture(t, in.set)
	c := f.client(t)
	for _, ep := range endpoints {
		for _, token := range []string{"", "unknown-token"} {
			code, body := f.do(t, c, ep.method, ep.path, token)
			if code != http.StatusUnauthorized || body != "Unauthorized" {
				t.Errorf("%s %s token %q: %d %q, want 401 \"Unauthorized\"", ep.method, ep.path, token, code, body)
			}
		}
	}
	if n := in.total(f); n != 0 {
		t.Errorf("handlers called %d times without credentials", n)
	}
	if _, sars := f.api.counts(); sars != 0 {
		t.Errorf("%d access reviews for unauthenticated requests", sars)
	}
}

func TestAnonymousRefusedEvenWithAnonymousOnWhenTokenInvalid(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Authentication.Anonymous = true })
	f.api.allow = allowSubresources("system:anonymous", "healthz")
	c := f.client(t)
	if code, body := f.do(t, c, "GET", "/healthz", ""); code != 200 || body != "ok" {
		t.Errorf("anonymous /healthz: %d %q", code, body)
	}
	got := f.api.lastSARs(1)[0]
	if got.User != "system:anonymous" || !cmp.Equal(got.Groups, []string{"system:unauthenticated"}) {
		t.Errorf("anonymous review for %q %v", got.User, got.Groups)
	}
	if code, _ := f.do(t, c, "GET", "/healthz", "bogus"); code != http.StatusUnauthorized {
		t.Errorf("invalid token with anonymous on: %d, want 401", code)
	}
}

func TestForbiddenWhenAccessReviewDenies(t *testing.T) {
	var in inner
	f := newFixture(t, func(c *Config) {
		in.set(c)
		// Every request reviewed: the same denial is not looked up again.
		c.Authorization.CacheUnauthorizedTTL = 0
	})
	f.api.tokens["t-alice"] = authnv1.UserInfo{Username: "alice", UID: "u1", Groups: []string{"devs"}}
	c := f.client(t)
	for _, ep := range endpoints {
		_, before := f.api.counts()
		code, body := f.do(t, c, ep.method, ep.path, "t-alice")
		verb := map[string]string{"GET": "get", "POST": "create"}[ep.method]
		want := "Forbidden (user=alice, verb=" + verb + ", resource=nodes, subresource(s)=[" + strings.Join(ep.subs, " ") + "])\n"
		if code != http.StatusForbidden || body != want {
			t.Errorf("%s %s: %d %q, want 403 %q", ep.method, ep.path, code, body, want)
		}
		_, after := f.api.counts()
		var subs []string
		for _, s := range f.api.lastSARs(after - before) {
			subs = append(subs, s.ResourceAttributes.Subresource)
			want := authzv1.SubjectAccessReviewSpec{
				ResourceAttributes: &authzv1.ResourceAttributes{Verb: verb, Version: "v1", Resource: "nodes", Subresource: s.ResourceAttributes.Subresource, Name: "node1"},
				User:               "alice", UID: "u1", Groups: []string{"devs", "system:authenticated"},
			}
			if diff := cmp.Diff(want, s); diff != "" {
				t.Errorf("%s %s review (-want +got):\n%s", ep.method, ep.path, diff)
			}
		}
		if diff := cmp.Diff(ep.subs, subs); diff != "" {
			t.Errorf("%s %s reviewed subresources (-want +got):\n%s", ep.method, ep.path, diff)
		}
	}
	if n := in.total(f); n != 0 {
		t.Errorf("handlers called %d times for forbidden requests", n)
	}
}

func TestAllowedReachesHandlers(t *testing.T) {
	var in inner
	f := newFixture(t, in.set)
	f.api.tokens["t-apiserver"] = authnv1.UserInfo{Username: "kube-apiserver"}
	f.api.allow = allowSubresources("kube-apiserver", "pods", "healthz", "configz", "stats", "metrics", "log", "proxy")
	c := f.client(t)
	for _, ep := range endpoints {
		code, body := f.do(t, c, ep.method, ep.path, "t-apiserver")
		switch ep.path {
		case "/logs/", "/nowhere":
			if code != http.StatusNotFound {
				t.Errorf("%s: %d, want 404", ep.path, code)
			}
		case "/healthz":
			if code != 200 || body != "ok" {
				t.Errorf("/healthz: %d %q", code, body)
			}
		case "/configz":
			if code != 200 || body != `{"kubeletconfig":{"port":10250}}` {
				t.Errorf("/configz: %d %q", code, body)
			}
		case "/pods":
			var list v1.PodList
			if err := json.Unmarshal([]byte(body), &list); err != nil || code != 200 {
				t.Fatalf("/pods: %d %q %v", code, body, err)
			}
			if list.Kind != "PodList" || list.APIVersion != "v1" || len(list.Items) != 1 || list.Items[0].Name != "web" {
				t.Errorf("/pods answered %+v", list)
			}
		default:
			if code != 200 || body != "spy "+ep.path {
				t.Errorf("%s %s: %d %q", ep.method, ep.path, code, body)
			}
		}
	}
	for _, h := range f.spy.headers {
		if h != "" {
			t.Errorf("handler saw Authorization %q: the token must not reach it", h)
		}
	}
}

func TestFineGrainedFallsBackToProxy(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		path    string
		code    int
		reviews []string
	}{
		{"pods through pods", []string{"pods"}, "/pods", 200, []string{"pods"}},
		{"pods through proxy", []string{"proxy"}, "/pods", 200, []string{"pods", "proxy"}},
		{"healthz through proxy", []string{"proxy"}, "/healthz", 200, []string{"healthz", "proxy"}},
		{"configz through configz", []string{"configz"}, "/configz", 200, []string{"configz"}},
		{"stats not through proxy", []string{"proxy"}, "/stats/summary", 403, []string{"stats"}},
		{"metrics not through proxy", []string{"proxy"}, "/metrics", 403, []string{"metrics"}},
		{"exec not through pods", []string{"pods"}, "/exec/a/b/c", 403, []string{"proxy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in inner
			f := newFixture(t, in.set)
			f.api.tokens["t"] = authnv1.UserInfo{Username: "scraper"}
			f.api.allow = allowSubresources("scraper", tt.allowed...)
			if code, body := f.do(t, f.client(t), "GET", tt.path, "t"); code != tt.code {
				t.Errorf("GET %s: %d %q, want %d", tt.path, code, body, tt.code)
			}
			var got []string
			for _, s := range f.api.sars {
				got = append(got, s.ResourceAttributes.Subresource)
			}
			if diff := cmp.Diff(tt.reviews, got); diff != "" {
				t.Errorf("reviews (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClientCertificate(t *testing.T) {
	f := newFixture(t, nil)
	f.api.allow = allowSubresources("kube-apiserver-kubelet-client", "proxy")
	c := f.client(t, f.ca.clientCert(t, "kube-apiserver-kubelet-client", "kubeadm:cluster-admins"))
	if code, body := f.do(t, c, "POST", "/exec/default/web/nginx", ""); code != 200 {
		t.Fatalf("exec with a client certificate: %d %q", code, body)
	}
	got := f.api.lastSARs(1)[0]
	if diff := cmp.Diff([]string{"kubeadm:cluster-admins", "system:authenticated"}, got.Groups); got.User != "kube-apiserver-kubelet-client" || diff != "" {
		t.Errorf("review for %q groups (-want +got):\n%s", got.User, diff)
	}
	if tokenReviews, _ := f.api.counts(); tokenReviews != 0 {
		t.Errorf("%d token reviews for a certificate", tokenReviews)
	}

	// A certificate of another authority fails the handshake (sent even
	// though the server does not name its authority).
	other := newTestCA(t, "other")
	mallory := other.clientCert(t, "mallory")
	oc := f.client(t)
	oc.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &mallory, nil
	}
	req, _ := http.NewRequest("GET", f.ts.URL+"/healthz", nil)
	if resp, err := oc.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("certificate of another CA: %s, want a failed handshake", resp.Status)
	}
}

func TestCertificateVerifiedByTheHandlerToo(t *testing.T) {
	f := newFixture(t, nil)
	f.api.allow = allowSubresources("mallory", "proxy")
	// Served by a TLS configuration trusting any client certificate, the
	// handler must still refuse one its CA did not sign.
	other := newTestCA(t, "other")
	ts := httptest.NewUnstartedServer(f.srv.Handler())
	ts.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	ts.StartTLS()
	defer ts.Close()
	c := ts.Client()
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{other.clientCert(t, "mallory")}
	resp, err := c.Post(ts.URL+"/exec/default/web/nginx", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("foreign certificate: %s, want 401", resp.Status)
	}
}

func TestAlwaysAllow(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Authorization.Mode = ModeAlwaysAllow })
	f.api.tokens["t"] = authnv1.UserInfo{Username: "bob"}
	c := f.client(t)
	if code, _ := f.do(t, c, "GET", "/stats/summary", "t"); code != 200 {
		t.Errorf("AlwaysAllow: %d", code)
	}
	if code, _ := f.do(t, c, "GET", "/stats/summary", ""); code != http.StatusUnauthorized {
		t.Errorf("AlwaysAllow without credentials: %d, want 401", code)
	}
	if _, sars := f.api.counts(); sars != 0 {
		t.Errorf("%d access reviews in AlwaysAllow mode", sars)
	}
}

func TestReviewErrors(t *testing.T) {
	f := newFixture(t, nil)
	f.api.tokens["t"] = authnv1.UserInfo{Username: "bob"}
	f.api.sarErr = errAPIDown
	c := f.client(t)
	code, body := f.do(t, c, "GET", "/stats/summary", "t")
	if want := "Authorization error (user=bob, verb=get, resource=nodes, subresource=stats)"; code != 500 || body != want {
		t.Errorf("access review error: %d %q, want 500 %q", code, body, want)
	}
	f.api.client.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errAPIDown
	})
	if code, body := f.do(t, c, "GET", "/stats/summary", "t2"); code != 401 || body != "Unauthorized" {
		t.Errorf("token review error: %d %q, want 401", code, body)
	}
	if f.spy.calls() != 0 {
		t.Errorf("handler called despite review errors")
	}
}

func TestCaching(t *testing.T) {
	f := newFixture(t, nil)
	f.api.tokens["good"] = authnv1.UserInfo{Username: "alice"}
	f.api.allow = allowSubresources("alice", "stats")
	c := f.client(t)
	step := func(d time.Duration) { f.clock.Step(d) }
	check := func(what string, path, token string, code, tokenReviews, sars int) {
		t.Helper()
		if got, body := f.do(t, c, "GET", path, token); got != code {
			t.Errorf("%s: %d %q, want %d", what, got, body, code)
		}
		if gotTR, gotSAR := f.api.counts(); gotTR != tokenReviews || gotSAR != sars {
			t.Errorf("%s: %d token reviews, %d access reviews; want %d, %d", what, gotTR, gotSAR, tokenReviews, sars)
		}
	}
	check("first", "/stats/summary", "good", 200, 1, 1)
	check("cached", "/stats/summary", "good", 200, 1, 1)
	step(2*time.Minute + time.Second)
	check("token expired", "/stats/summary", "good", 200, 2, 1)
	step(3 * time.Minute)
	check("decision expired", "/stats/summary", "good", 200, 3, 2)

	check("denied", "/metrics", "good", 403, 3, 3)
	check("denied cached", "/metrics", "good", 403, 3, 3)
	step(31 * time.Second)
	check("denial expired", "/metrics", "good", 403, 3, 4)

	check("rejected token", "/metrics", "bad", 401, 4, 4)
	check("rejected token cached", "/metrics", "bad", 401, 4, 4)
}

func TestNilHandlersAnswer404(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Handlers = Handlers{}
		c.Authorization.Mode = ModeAlwaysAllow
	})
	f.api.tokens["t"] = authnv1.UserInfo{Username: "bob"}
	c := f.client(t)
	for _, ep := range endpoints {
		code, body := f.do(t, c, ep.method, ep.path, "t")
		want := http.StatusNotFound
		if ep.path == "/healthz" {
			want = 200
		}
		if code != want {
			t.Errorf("%s %s: %d %q, want %d", ep.method, ep.path, code, body, want)
		}
	}
}

func TestHealthzFailure(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Handlers.Healthz = func() error { return errors.New("pod loop stalled") }
		c.Authorization.Mode = ModeAlwaysAllow
	})
	f.api.tokens["t"] = authnv1.UserInfo{Username: "bob"}
	code, body := f.do(t, f.client(t), "GET", "/healthz", "t")
	if code != 500 || !strings.Contains(body, "pod loop stalled") {
		t.Errorf("/healthz: %d %q, want 500 naming the failure", code, body)
	}
	if code, _ := f.do(t, f.client(t), "POST", "/healthz", "t"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", code)
	}
}

// hijacker takes the connection over, as exec's stream upgrade does.
type hijacker struct{}

func (hijacker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	defer conn.Close()
	_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
	_ = rw.Flush()
}

func TestRequestLogAndHijack(t *testing.T) {
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(4), ktesting.BufferLogs(true)))
	f := newFixture(t, func(c *Config) {
		c.Handlers.Streaming = hijacker{}
		c.Authorization.Mode = ModeAlwaysAllow
	})
	// A server of its own, whose requests carry the verbose logger.
	ts := httptest.NewUnstartedServer(f.srv.Handler())
	ts.TLS = f.srv.TLSConfig().Clone()
	ts.Config.BaseContext = func(net.Listener) context.Context { return klog.NewContext(context.Background(), logger) }
	ts.StartTLS()
	defer ts.Close()
	f.ts = ts
	f.api.tokens["t"] = authnv1.UserInfo{Username: "bob"}
	if code, body := f.do(t, f.client(t), "POST", "/exec/default/web/nginx", "t"); code != 200 || body != "hijacked" {
		t.Errorf("hijacked exec: %d %q", code, body)
	}
	f.do(t, f.client(t), "GET", "/stats/summary", "")
	logs := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
	for _, want := range []string{
		`Kubelet API request user="bob" method="POST" path="/exec/default/web/nginx" status=101`,
		`Kubelet API request user="" method="GET" path="/stats/summary" status=401`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("request log lacks %s:\n%s", want, logs)
		}
	}
}

func TestServeAndShutdown(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Authorization.Mode = ModeAlwaysAllow })
	f.api.tokens["t"] = authnv1.UserInfo{Username: "bob"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.srv.serve(ctx, ln) }()
	f.ts = &httptest.Server{URL: "https://" + ln.Addr().String()}
	c := f.client(t)
	if code, body := f.do(t, c, "GET", "/healthz", "t"); code != 200 || body != "ok" {
		t.Errorf("/healthz on the served port: %d %q", code, body)
	}
	// HTTP/2 is offered, as by kubelet.
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Errorf("negotiated %q, want h2", p)
	}
	conn.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
}

func TestRunFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	f := newFixture(t, func(c *Config) { c.Port = port })
	if err := f.srv.Run(t.Context()); err == nil {
		t.Error("Run on a busy port: nil error")
	}
}
