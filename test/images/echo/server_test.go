package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a server running in-process on loopback ports.
type testServer struct {
	*server
	log    *syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	code   int
	err    error
}

func startServer(t *testing.T, name string) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	s, err := listen(serverConfig{
		HTTPAddr: "127.0.0.1:0",
		TCPAddr:  "127.0.0.1:0",
		UDPAddr:  "127.0.0.1:0",
		Name:     name,
		Log:      log.New(logs, "", 0),
		Environ:  func() []string { return []string{"ZZ=last", "POD_NAME=" + name, "A=first"} },
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{server: s, log: logs, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ts.done)
		ts.code, ts.err = s.run(ctx)
	}()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop terminates the server as SIGTERM would and returns its result.
func (ts *testServer) stop(t *testing.T) (int, error) {
	t.Helper()
	ts.cancel()
	select {
	case <-ts.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("server did not stop")
	}
	return ts.code, ts.err
}

func (ts *testServer) httpURL(path string) string {
	return "http://" + ts.httpLn.Addr().String() + path
}

// getFrom GETs url on a new connection and returns the client's local
// address along with the status and body.
func getFrom(t *testing.T, url string) (local string, status int, body string) {
	t.Helper()
	transport := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			if err == nil {
				local = conn.LocalAddr().String()
			}
			return conn, err
		},
	}
	resp, err := (&http.Client{Transport: transport, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return local, resp.StatusCode, string(data)
}

func TestServeHTTP(t *testing.T) {
	ts := startServer(t, "pod-a")
	for _, tc := range []struct {
		path       string
		wantStatus int
		wantBody   func(local string) string
	}{
		{path: "/", wantStatus: 200, wantBody: func(local string) string { return "pod-a " + local + "\n" }},
		{path: "/any/path?x=1", wantStatus: 200, wantBody: func(local string) string { return "pod-a " + local + "\n" }},
		{path: "/healthz", wantStatus: 200, wantBody: func(string) string { return "ok\n" }},
		{path: "/env", wantStatus: 200, wantBody: func(string) string { return "A=first\nPOD_NAME=pod-a\nZZ=last\n" }},
		{path: "/exit", wantStatus: 400, wantBody: func(string) string { return "want /exit?code=N with N in 0-255\n" }},
		{path: "/exit?code=256", wantStatus: 400, wantBody: func(string) string { return "want /exit?code=N with N in 0-255\n" }},
		{path: "/exit?code=x", wantStatus: 400, wantBody: func(string) string { return "want /exit?code=N with N in 0-255\n" }},
	} {
		t.Run(tc.path, func(t *testing.T) {
			local, status, body := getFrom(t, ts.httpURL(tc.path))
			want := []any{tc.wantStatus, tc.wantBody(local)}
			if diff := cmp.Diff(want, []any{status, body}); diff != "" {
				t.Errorf("GET %s (-want +got):\n%s", tc.path, diff)
			}
			waitLog(t, ts, "from "+local)
		})
	}
}

func TestServeTCP(t *testing.T) {
	ts := startServer(t, "pod-b")
	for range 3 {
		conn, err := net.Dial("tcp", ts.tcpLn.Addr().String())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		reply, err := io.ReadAll(conn)
		conn.Close()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		local := conn.LocalAddr().String()
		if diff := cmp.Diff("pod-b "+local+"\n", string(reply)); diff != "" {
			t.Errorf("TCP reply (-want +got):\n%s", diff)
		}
		waitLog(t, ts, "tcp from "+local)
	}
}

func TestServeUDP(t *testing.T) {
	ts := startServer(t, "pod-c")
	for _, payload := range []string{"hello", ""} {
		conn, err := net.Dial("udp", ts.udpConn.LocalAddr().String())
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(payload)); err != nil {
			t.Fatalf("send: %v", err)
		}
		buf := make([]byte, 1024)
		n, err := conn.Read(buf)
		conn.Close()
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		local := conn.LocalAddr().String()
		if diff := cmp.Diff("pod-c "+local+"\n", string(buf[:n])); diff != "" {
			t.Errorf("UDP reply to %q (-want +got):\n%s", payload, diff)
		}
		waitLog(t, ts, "udp from "+local)
	}
}

func TestServeExit(t *testing.T) {
	ts := startServer(t, "pod-d")
	_, status, body := getFrom(t, ts.httpURL("/exit?code=7"))
	if diff := cmp.Diff([]any{200, "exiting with code 7\n"}, []any{status, body}); diff != "" {
		t.Errorf("GET /exit (-want +got):\n%s", diff)
	}
	select {
	case <-ts.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("server did not exit after /exit")
	}
	if ts.code != 7 || ts.err != nil {
		t.Errorf("run() = %d, %v; want 7, nil", ts.code, ts.err)
	}
}

func TestServeTerminate(t *testing.T) {
	ts := startServer(t, "pod-e")
	addrs := []struct{ network, addr string }{
		{"tcp", ts.httpLn.Addr().String()},
		{"tcp", ts.tcpLn.Addr().String()},
	}
	code, err := ts.stop(t)
	if code != 0 || err != nil {
		t.Errorf("run() = %d, %v; want 0, nil", code, err)
	}
	if !strings.Contains(ts.log.String(), "terminating") {
		t.Errorf("log does not say terminating:\n%s", ts.log.String())
	}
	for _, a := range addrs {
		if conn, err := net.Dial(a.network, a.addr); err == nil {
			conn.Close()
			t.Errorf("%s %s still accepts connections after termination", a.network, a.addr)
		}
	}
	if _, _, err := ts.udpConn.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("UDP socket not closed after termination: %v", err)
	}
}

func TestListenBadAddress(t *testing.T) {
	_, err := listen(serverConfig{HTTPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", UDPAddr: "256.0.0.1:1"})
	if err == nil {
		t.Fatalf("listen on a bad UDP address succeeded")
	}
}

func TestDefaultName(t *testing.T) {
	for _, tc := range []struct {
		name     string
		podName  string
		hostname string
		hostErr  error
		want     string
	}{
		{name: "pod name wins", podName: "web-1", hostname: "node", want: "web-1"},
		{name: "hostname", hostname: "web-2", want: "web-2"},
		{name: "no hostname", hostErr: errors.New("boom"), want: "echo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(key string) string {
				if key == "POD_NAME" {
					return tc.podName
				}
				return ""
			}
			hostname := func() (string, error) { return tc.hostname, tc.hostErr }
			if got := defaultName(getenv, hostname); got != tc.want {
				t.Errorf("defaultName() = %q, want %q", got, tc.want)
			}
		})
	}
}

// waitLog waits until the server has logged a line containing want: the
// server logs after it answers, so the client may read the answer first.
func waitLog(t *testing.T, ts *testServer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ts.log.String(), want) {
		if time.Now().After(deadline) {
			t.Errorf("log has no line %q:\n%s", want, ts.log.String())
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServeSetHealth(t *testing.T) {
	ts := startServer(t, "pod-h")
	steps := []struct {
		path   string
		status int
	}{
		{"/healthz", 200},
		{"/sethealth?ok=false", 200},
		{"/healthz", 503},
		{"/sethealth?ok=maybe", 400},
		{"/healthz", 503},
		{"/sethealth?ok=true", 200},
		{"/healthz", 200},
	}
	for _, st := range steps {
		if _, status, body := getFrom(t, ts.httpURL(st.path)); status != st.status {
			t.Errorf("GET %s = %d %q, want %d", st.path, status, body, st.status)
		}
	}
}
