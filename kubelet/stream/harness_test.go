package stream

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	critesting "github.com/berthnode/berth/cri/testing"
)

// testTimeout bounds every connection of a test, so a broken proxy fails
// the test instead of hanging it.
const testTimeout = 10 * time.Second

// seenRequest is a request as the toy streaming server got it.
type seenRequest struct {
	Method string
	URI    string
	Host   string
	Header http.Header
}

// toyServer stands in for the runtime's streaming server. It switches to a
// toy protocol: it greets with "hello\n" in the same write as its 101
// answer, then, for exec, answers each line upper-cased until the client
// ends its input, and says "bye\n" and closes; for attach and port
// forwarding it says "bye\n" and closes right away, ending the session
// first. A path under /refuse/ is answered 404, as an expired token.
type toyServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func newToyServer(t *testing.T, useTLS bool) *toyServer {
	s := &toyServer{}
	s.Server = httptest.NewUnstartedServer(s)
	if useTLS {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func (s *toyServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.seen...)
}

func (s *toyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen = append(s.seen, seenRequest{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone()})
	s.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/refuse/") {
		w.Header().Set("X-Toy", "refused")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "token expired")
		return
	}
	if r.Header.Get("Upgrade") == "" {
		http.Error(w, "upgrade required", http.StatusBadRequest)
		return
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n", r.Header.Get("Upgrade"))
	if v := r.Header.Values("X-Stream-Protocol-Version"); len(v) > 0 {
		fmt.Fprintf(buf, "X-Stream-Protocol-Version: %s\r\n", v[0])
	}
	fmt.Fprint(buf, "\r\nhello\n")
	if err := buf.Flush(); err != nil || !strings.HasPrefix(r.URL.Path, "/exec/") {
		fmt.Fprint(conn, "bye\n")
		return
	}
	for {
		line, err := buf.ReadString('\n')
		if _, werr := io.WriteString(conn, strings.ToUpper(line)); werr != nil || err != nil {
			break
		}
	}
	fmt.Fprint(conn, "bye\n")
}

// harness is a Handler over a fake runtime whose URLs point at a toyServer,
// served by front.
type harness struct {
	rt    *critesting.Runtime
	toy   *toyServer
	front *httptest.Server
	// IDs of the fixture's objects.
	readySandbox, app string
}

// newHarness builds the fixture: pod default/web (UID uid-2) with a ready
// sandbox after a stopped one of an older UID; in the ready sandbox an
// exited and a running "app" and an exited "sidecar". Pod default/stopped
// has only a stopped sandbox.
func newHarness(t *testing.T, tlsFront, tlsBackend bool) *harness {
	h := &harness{rt: critesting.NewRuntime(), toy: newToyServer(t, tlsBackend)}
	h.rt.StreamBase = h.toy.URL
	exited, running := runtimeapi.ContainerState_CONTAINER_EXITED, runtimeapi.ContainerState_CONTAINER_RUNNING
	h.rt.AddSandbox(critesting.Sandbox{ID: "sb-1", Namespace: "default", Name: "web", UID: "uid-1", CreatedAt: 1, NotReady: true})
	h.rt.AddContainer(critesting.Container{ID: "c-1", SandboxID: "sb-1", Name: "app", State: exited, CreatedAt: 1})
	h.readySandbox = "sb-2"
	h.rt.AddSandbox(critesting.Sandbox{ID: h.readySandbox, Namespace: "default", Name: "web", UID: "uid-2", CreatedAt: 2})
	h.rt.AddContainer(critesting.Container{ID: "c-2", SandboxID: h.readySandbox, Name: "app", State: exited, CreatedAt: 3})
	h.app = "c-3"
	h.rt.AddContainer(critesting.Container{ID: h.app, SandboxID: h.readySandbox, Name: "app", State: running, CreatedAt: 4})
	h.rt.AddContainer(critesting.Container{ID: "c-4", SandboxID: h.readySandbox, Name: "sidecar", State: exited, CreatedAt: 5})
	h.rt.AddSandbox(critesting.Sandbox{ID: "sb-3", Namespace: "default", Name: "stopped", UID: "uid-3", CreatedAt: 6, NotReady: true})
	h.rt.AddContainer(critesting.Container{ID: "c-5", SandboxID: "sb-3", Name: "app", State: exited, CreatedAt: 7})

	handler, err := New(Config{Runtime: h.rt})
	if err != nil {
		t.Fatal(err)
	}
	h.front = httptest.NewUnstartedServer(handler)
	if tlsFront {
		h.front.StartTLS()
	} else {
		h.front.Start()
	}
	t.Cleanup(h.front.Close)
	return h
}

// session is the client's side of an upgraded connection.
type session struct {
	conn net.Conn
	r    *bufio.Reader
	resp *http.Response
}

// upgrade sends method path to srv with header and, in the same write,
// early, the first bytes of the new protocol; it returns the connection
// after the response.
func upgrade(t *testing.T, srv *httptest.Server, method, path string, header http.Header, early string) *session {
	t.Helper()
	addr := srv.Listener.Addr().String()
	var conn net.Conn
	var err error
	if srv.TLS != nil {
		cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		conn, err = tls.Dial("tcp", addr, cfg)
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, addr)
	if err := header.Write(&b); err != nil {
		t.Fatal(err)
	}
	b.WriteString("\r\n" + early)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("reading the response to %s: %v", path, err)
	}
	return &session{conn: conn, r: r, resp: resp}
}

// line reads one line of the session.
func (s *session) line(t *testing.T) string {
	t.Helper()
	l, err := s.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %v (got %q)", err, l)
	}
	return l
}

// closeWrite ends the client's input.
func (s *session) closeWrite(t *testing.T) {
	t.Helper()
	if err := s.conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// rest reads the session to its end.
func (s *session) rest(t *testing.T) string {
	t.Helper()
	b, err := io.ReadAll(s.r)
	if err != nil {
		t.Fatalf("reading to the end: %v (got %q)", err, b)
	}
	return string(b)
}

// spdyHeader is the header of a SPDY upgrade as the apiserver sends it.
func spdyHeader() http.Header {
	return http.Header{
		"Connection":                {"Upgrade"},
		"Upgrade":                   {"SPDY/3.1"},
		"X-Stream-Protocol-Version": {"v4.channel.k8s.io", "v3.channel.k8s.io"},
	}
}

// certPEM is the PEM of the certificate of srv.
func certPEM(t *testing.T, srv *httptest.Server) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}
