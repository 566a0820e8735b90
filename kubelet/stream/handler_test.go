package stream

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	critesting "github.com/berthnode/berth/cri/testing"
)

func TestExecSession(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		tlsFront, tlsBackend bool
	}{
		{name: "plain"},
		{name: "TLS client", tlsFront: true},
		{name: "TLS streaming server", tlsBackend: true},
		{name: "TLS both", tlsFront: true, tlsBackend: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.tlsFront, tc.tlsBackend)
			header := spdyHeader()
			header.Set("Authorization", "Bearer for-the-kubelet")
			header.Set("User-Agent", "kube-apiserver")
			s := upgrade(t, h.front, http.MethodPost,
				"/exec/default/web/app?command=sh&command=-c&command=echo+hi&input=1&output=1&error=1", header, "one\n")
			if s.resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %s, want 101", s.resp.Status)
			}
			if got := s.resp.Header.Get("X-Stream-Protocol-Version"); got != "v4.channel.k8s.io" {
				t.Errorf("negotiated protocol %q, want v4.channel.k8s.io", got)
			}
			// Bytes both ways, including those each side sent along with
			// its upgrade.
			for _, want := range []string{"hello\n", "ONE\n"} {
				if got := s.line(t); got != want {
					t.Fatalf("read %q, want %q", got, want)
				}
			}
			if _, err := s.conn.Write([]byte("two\n")); err != nil {
				t.Fatal(err)
			}
			if got := s.line(t); got != "TWO\n" {
				t.Fatalf("read %q, want TWO", got)
			}
			// The end of the input reaches the runtime, and its last words
			// still reach the client.
			s.closeWrite(t)
			if got := s.rest(t); got != "bye\n" {
				t.Errorf("after the end of input read %q, want bye", got)
			}

			wantCRI := []any{&runtimeapi.ExecRequest{
				ContainerId: h.app, Cmd: []string{"sh", "-c", "echo hi"}, Stdin: true, Stdout: true, Stderr: true,
			}}
			if diff := cmp.Diff(wantCRI, h.rt.StreamRequests(), protocmp.Transform()); diff != "" {
				t.Errorf("CRI requests (-want +got):\n%s", diff)
			}
			seen := h.toy.requests()
			if len(seen) != 1 {
				t.Fatalf("streaming server got %d requests, want 1", len(seen))
			}
			backendHost := h.toy.Listener.Addr().String()
			want := seenRequest{
				Method: http.MethodPost,
				URI:    "/exec/token-1",
				Host:   backendHost,
				Header: http.Header{
					"Connection":                {"Upgrade"},
					"Upgrade":                   {"SPDY/3.1"},
					"X-Stream-Protocol-Version": {"v4.channel.k8s.io", "v3.channel.k8s.io"},
					"User-Agent":                {"kube-apiserver"},
					"Content-Length":            {"0"},
				},
			}
			if diff := cmp.Diff(want, seen[0]); diff != "" {
				t.Errorf("request to the streaming server (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRuntimeEndsSessionFirst(t *testing.T) {
	h := newHarness(t, false, false)
	s := upgrade(t, h.front, http.MethodGet, "/attach/default/web/app?output=1", spdyHeader(), "")
	if s.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %s, want 101", s.resp.Status)
	}
	// The client has not ended its input: the end comes from the runtime.
	if got := s.rest(t); got != "hello\nbye\n" {
		t.Errorf("read %q, want hello and bye", got)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	h := newHarness(t, false, false)
	header := http.Header{
		"Connection":             {"keep-alive, Upgrade"},
		"Upgrade":                {"websocket"},
		"Sec-Websocket-Version":  {"13"},
		"Sec-Websocket-Key":      {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Sec-Websocket-Protocol": {"v5.channel.k8s.io, v4.channel.k8s.io"},
		"Keep-Alive":             {"timeout=5"},
	}
	s := upgrade(t, h.front, http.MethodGet, "/portForward/default/web?port=8080", header, "")
	if s.resp.StatusCode != http.StatusSwitchingProtocols || s.resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("status %s, upgrade %q; want 101 to websocket", s.resp.Status, s.resp.Header.Get("Upgrade"))
	}
	if got := s.rest(t); got != "hello\nbye\n" {
		t.Errorf("read %q, want hello and bye", got)
	}
	got := h.toy.requests()[0].Header
	want := http.Header{
		"Connection":             {"Upgrade"},
		"Upgrade":                {"websocket"},
		"Sec-Websocket-Version":  {"13"},
		"Sec-Websocket-Key":      {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Sec-Websocket-Protocol": {"v5.channel.k8s.io, v4.channel.k8s.io"},
		"User-Agent":             {"Go-http-client/1.1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers to the streaming server (-want +got):\n%s", diff)
	}
	wantCRI := []any{&runtimeapi.PortForwardRequest{PodSandboxId: h.readySandbox, Port: []int32{8080}}}
	if diff := cmp.Diff(wantCRI, h.rt.StreamRequests(), protocmp.Transform()); diff != "" {
		t.Errorf("CRI requests (-want +got):\n%s", diff)
	}
}

// TestCRIRequests checks what the runtime is asked for each kind of
// request, and that each session starts.
func TestCRIRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		path string
		want func(h *harness) any
	}{{
		name: "exec as the apiserver asks",
		path: "/exec/default/web/app?command=ls&command=-l&input=1&output=1&error=1",
		want: func(h *harness) any {
			return &runtimeapi.ExecRequest{ContainerId: h.app, Cmd: []string{"ls", "-l"}, Stdin: true, Stdout: true, Stderr: true}
		},
	}, {
		name: "exec with a terminal drops stderr",
		path: "/exec/default/web/app?command=bash&input=1&output=1&error=1&tty=1",
		want: func(h *harness) any {
			return &runtimeapi.ExecRequest{ContainerId: h.app, Cmd: []string{"bash"}, Tty: true, Stdin: true, Stdout: true}
		},
	}, {
		name: "exec with the option names of PodExecOptions",
		path: "/exec/default/web/app?command=date&stdin=true&stdout=true&stderr=false",
		want: func(h *harness) any {
			return &runtimeapi.ExecRequest{ContainerId: h.app, Cmd: []string{"date"}, Stdin: true, Stdout: true}
		},
	}, {
		name: "exec with the pod's UID",
		path: "/exec/default/web/uid-2/app?command=date&output=1",
		want: func(h *harness) any {
			return &runtimeapi.ExecRequest{ContainerId: h.app, Cmd: []string{"date"}, Stdout: true}
		},
	}, {
		name: "attach",
		path: "/attach/default/web/app?input=1&output=1&tty=1",
		want: func(h *harness) any {
			return &runtimeapi.AttachRequest{ContainerId: h.app, Tty: true, Stdin: true, Stdout: true}
		},
	}, {
		name: "attach with the pod's UID",
		path: "/attach/default/web/uid-2/app?output=1&error=1",
		want: func(h *harness) any {
			return &runtimeapi.AttachRequest{ContainerId: h.app, Stdout: true, Stderr: true}
		},
	}, {
		name: "port forward, ports in the streams",
		path: "/portForward/default/web",
		want: func(h *harness) any { return &runtimeapi.PortForwardRequest{PodSandboxId: h.readySandbox} },
	}, {
		name: "port forward with ports and the pod's UID",
		path: "/portForward/default/web/uid-2?port=80&port=8080,9090",
		want: func(h *harness) any {
			return &runtimeapi.PortForwardRequest{PodSandboxId: h.readySandbox, Port: []int32{80, 8080, 9090}}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, false, false)
			s := upgrade(t, h.front, http.MethodPost, tc.path, spdyHeader(), "")
			if s.resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %s, want 101", s.resp.Status)
			}
			if got := s.line(t); got != "hello\n" {
				t.Errorf("read %q, want hello", got)
			}
			if diff := cmp.Diff([]any{tc.want(h)}, h.rt.StreamRequests(), protocmp.Transform()); diff != "" {
				t.Errorf("CRI requests (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRefusals checks the requests answered without a session, and that
// the runtime is not asked for a session that cannot be served.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name      string
		method    string
		path      string
		noUpgrade bool
		header    http.Header
		// streamErr is what the runtime's streaming calls return.
		streamErr error
		wantCode  int
		wantBody  string
		// wantCRI tells whether the runtime is asked for a session.
		wantCRI bool
	}{
		{name: "method", method: http.MethodPut, path: "/exec/default/web/app?command=ls&output=1", wantCode: 405, wantBody: "method PUT is not allowed"},
		{name: "exec path too short", path: "/exec/default/web", wantCode: 404, wantBody: "no streaming endpoint"},
		{name: "exec path too long", path: "/exec/default/web/uid-2/app/more", wantCode: 404, wantBody: "no streaming endpoint"},
		{name: "empty segment", path: "/exec/default//app?command=ls&output=1", wantCode: 404, wantBody: "no streaming endpoint"},
		{name: "trailing slash", path: "/portForward/default/web/", wantCode: 404, wantBody: "no streaming endpoint"},
		{name: "port forward path too long", path: "/portForward/default/web/uid-2/app", wantCode: 404, wantBody: "no streaming endpoint"},
		{name: "unknown endpoint", path: "/run/default/web/app", wantCode: 404, wantBody: "no streaming endpoint"},
		{name: "exec without command", path: "/exec/default/web/app?output=1", wantCode: 400, wantBody: `the "command" parameter is missing`},
		{name: "exec without streams", path: "/exec/default/web/app?command=ls", wantCode: 400, wantBody: "at least 1 of stdin, stdout, stderr"},
		{name: "attach with only stderr and tty", path: "/attach/default/web/app?error=1&tty=1", wantCode: 400, wantBody: "at least 1 of stdin, stdout, stderr"},
		{name: "bad port", path: "/portForward/default/web?port=http", wantCode: 400, wantBody: `invalid port "http"`},
		{name: "port zero", path: "/portForward/default/web?port=0", wantCode: 400, wantBody: `invalid port "0"`},
		{name: "port too big", path: "/portForward/default/web?port=80,65536", wantCode: 400, wantBody: `invalid port "65536"`},
		{
			name: "websocket port forward without ports", path: "/portForward/default/web",
			header:   http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}},
			wantCode: 400, wantBody: `query parameter "port" is required`,
		},
		{name: "unknown pod", path: "/exec/default/nope/app?command=ls&output=1", wantCode: 404, wantBody: "pod default/nope not found on this node"},
		{name: "unknown pod, port forward", path: "/portForward/other/web", wantCode: 404, wantBody: "pod other/web not found on this node"},
		{name: "UID mismatch", path: "/exec/default/web/uid-9/app?command=ls&output=1", wantCode: 404, wantBody: "pod default/web with UID uid-9 not found on this node (its UID is uid-2)"},
		{name: "UID of a stopped sandbox", path: "/portForward/default/web/uid-1", wantCode: 400, wantBody: "pod default/web is not running: it has no ready sandbox"},
		{name: "unknown container", path: "/exec/default/web/nope?command=ls&output=1", wantCode: 404, wantBody: `container not found ("nope") in pod default/web`},
		{name: "container not running", path: "/attach/default/web/sidecar?output=1", wantCode: 400, wantBody: "container sidecar is not running (exited) in pod default/web"},
		{name: "pod not running", path: "/exec/default/stopped/app?command=ls&output=1", wantCode: 400, wantBody: "pod default/stopped is not running"},
		{name: "no upgrade", path: "/exec/default/web/app?command=ls&output=1", noUpgrade: true, wantCode: 400, wantBody: "Upgrade request required"},
		{
			name: "Upgrade not named in Connection", path: "/portForward/default/web",
			header:   http.Header{"Connection": {"keep-alive"}, "Upgrade": {"SPDY/3.1"}},
			wantCode: 400, wantBody: "Upgrade request required",
		},
		{
			name: "runtime lost the container", path: "/exec/default/web/app?command=ls&output=1",
			streamErr: status.Error(codes.NotFound, "no such container"), wantCode: 404, wantBody: "no such container", wantCRI: true,
		},
		{
			name: "runtime refuses", path: "/attach/default/web/app?output=1",
			streamErr: status.Error(codes.FailedPrecondition, "container is stopping"), wantCode: 400, wantBody: "container is stopping", wantCRI: true,
		},
		{
			name: "runtime unavailable", path: "/portForward/default/web",
			streamErr: status.Error(codes.Unavailable, "connection refused"), wantCode: 503, wantBody: "CRI port forward to pod default/web", wantCRI: true,
		},
		{
			name: "runtime fails", path: "/portForward/default/web",
			streamErr: errors.New("boom"), wantCode: 500, wantBody: "boom", wantCRI: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, false, false)
			h.rt.StreamErr = tc.streamErr
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			r := httptest.NewRequest(method, tc.path, nil)
			switch {
			case tc.header != nil:
				r.Header = tc.header
			case !tc.noUpgrade:
				r.Header = spdyHeader()
			}
			w := httptest.NewRecorder()
			handler, err := New(Config{Runtime: h.rt})
			if err != nil {
				t.Fatal(err)
			}
			handler.ServeHTTP(w, r)
			if w.Code != tc.wantCode || !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Errorf("got %d %q, want %d with %q", w.Code, w.Body.String(), tc.wantCode, tc.wantBody)
			}
			if asked := len(h.rt.StreamRequests()) > 0; asked != tc.wantCRI {
				t.Errorf("runtime asked for a session: %t, want %t", asked, tc.wantCRI)
			}
			if len(h.toy.requests()) > 0 {
				t.Errorf("the streaming server was called")
			}
		})
	}
}

func TestRuntimeRefusalRelayed(t *testing.T) {
	h := newHarness(t, false, false)
	h.rt.StreamBase = h.toy.URL + "/refuse"
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/exec/default/web/app?command=ls&output=1", nil)
	r.Header = spdyHeader()
	handler, err := New(Config{Runtime: h.rt})
	if err != nil {
		t.Fatal(err)
	}
	handler.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound || w.Body.String() != "token expired" {
		t.Errorf("got %d %q, want the runtime's 404 token expired", w.Code, w.Body.String())
	}
	if got := w.Header().Get("X-Toy"); got != "refused" {
		t.Errorf("header X-Toy %q, want the runtime's", got)
	}
	if got := w.Header().Get("Keep-Alive"); got != "" {
		t.Errorf("hop-by-hop header Keep-Alive %q relayed", got)
	}
	if seen := h.toy.requests(); len(seen) != 1 || seen[0].URI != "/refuse/exec/token-1" {
		t.Errorf("streaming server requests %+v, want one to /refuse/exec/token-1", seen)
	}
}

func TestStreamingServerFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name       string
		streamBase func(h *harness) string
		wantCode   int
		wantBody   string
	}{
		{name: "unreachable", streamBase: func(*harness) string { return closed }, wantCode: 502, wantBody: "connecting to the runtime's streaming server"},
		{name: "not a URL", streamBase: func(*harness) string { return "unix:///run/x.sock" }, wantCode: 500, wantBody: "is not an http(s) URL"},
		// The recorder cannot be taken over: the runtime's 101 cannot be
		// passed on.
		{name: "client not hijackable", streamBase: func(h *harness) string { return h.toy.URL }, wantCode: 500, wantBody: "taking over the client connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, false, false)
			h.rt.StreamBase = tc.streamBase(h)
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, "/portForward/default/web", nil)
			r.Header = spdyHeader()
			handler, err := New(Config{Runtime: h.rt})
			if err != nil {
				t.Fatal(err)
			}
			handler.ServeHTTP(w, r)
			if w.Code != tc.wantCode || !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Errorf("got %d %q, want %d with %q", w.Code, w.Body.String(), tc.wantCode, tc.wantBody)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "defaults", cfg: Config{Runtime: critesting.NewRuntime()}},
		{name: "no runtime", cfg: Config{}, wantErr: "runtime service is nil"},
		{name: "negative timeout", cfg: Config{Runtime: critesting.NewRuntime(), HandshakeTimeout: -1}, wantErr: "HandshakeTimeout -1ns is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tc.wantErr)
			}
			if _, err := New(tc.cfg); (err == nil) != (tc.wantErr == "") {
				t.Errorf("New() error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestTLSConfig(t *testing.T) {
	p := &upgradeProxy{}
	for host, wantSkip := range map[string]bool{
		"127.0.0.1":   true,
		"127.0.0.53":  true,
		"::1":         true,
		"localhost":   true,
		"10.0.0.1":    false,
		"node.local":  false,
		"::ffff:10.1": false,
	} {
		cfg := p.tlsConfig(host)
		if cfg.InsecureSkipVerify != wantSkip || cfg.ServerName != host {
			t.Errorf("tlsConfig(%q): skip verify %t, server name %q; want %t", host, cfg.InsecureSkipVerify, cfg.ServerName, wantSkip)
		}
	}
}
