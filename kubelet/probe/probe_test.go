package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	remote "k8s.io/cri-client/pkg"
	utilexec "k8s.io/utils/exec"
	"k8s.io/utils/ptr"
)

// outcome is what a probe function returned, for comparing.
type outcome struct {
	Result Result
	Output string
	Err    bool
}

func got(r Result, out string, err error) outcome {
	return outcome{Result: r, Output: out, Err: err != nil}
}

// fakeExec answers ExecSync from a table and keeps what it was asked.
type fakeExec struct {
	stdout, stderr string
	err            error
	cmd            []string
	timeout        time.Duration
}

func (f *fakeExec) ExecSync(_ context.Context, _ string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	f.cmd, f.timeout = cmd, timeout
	return []byte(f.stdout), []byte(f.stderr), f.err
}

func TestExec(t *testing.T) {
	t.Parallel()
	exit := func(code int) error {
		return utilexec.CodeExitError{Err: fmt.Errorf("exited with %d", code), Code: code}
	}
	tests := []struct {
		name string
		exec fakeExec
		want outcome
	}{
		{"exit 0", fakeExec{stdout: "ok\n"}, outcome{Success, "ok\n", false}},
		{"exit 1", fakeExec{stdout: "bad", stderr: "!", err: exit(1)}, outcome{Failure, "bad!", false}},
		{"exit error 0", fakeExec{err: exit(0)}, outcome{Success, "", false}},
		{"runtime timeout", fakeExec{err: fmt.Errorf("%w: x", remote.ErrCommandTimedOut)}, outcome{Failure, "command timed out", false}},
		{"deadline", fakeExec{err: context.DeadlineExceeded}, outcome{Failure, "command timed out", false}},
		{"runtime error", fakeExec{err: errors.New("no such container")}, outcome{Failure, "", true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := tt.exec
			if diff := cmp.Diff(tt.want, got(Exec(context.Background(), &f, "c1", []string{"cat", "/ready"}, 3*time.Second))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if f.timeout != 3*time.Second || strings.Join(f.cmd, " ") != "cat /ready" {
				t.Errorf("ExecSync got cmd %q timeout %s", f.cmd, f.timeout)
			}
		})
	}
}

func TestResolvePort(t *testing.T) {
	t.Parallel()
	c := &v1.Container{Ports: []v1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
	tests := []struct {
		port    intstr.IntOrString
		want    int
		wantErr bool
	}{
		{intstr.FromInt32(80), 80, false},
		{intstr.FromString("http"), 8080, false},
		{intstr.FromString("9090"), 9090, false},
		{intstr.FromString("grpc"), 0, true},
		{intstr.FromInt32(0), 0, true},
	}
	for _, tt := range tests {
		n, err := ResolvePort(tt.port, c)
		if (err != nil) != tt.wantErr || (err == nil && n != tt.want) {
			t.Errorf("ResolvePort(%s) = %d, %v; want %d, error %t", tt.port.String(), n, err, tt.want, tt.wantErr)
		}
	}
}

// hostPort splits a test server's URL.
func hostPort(t *testing.T, raw string) (string, int) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	return u.Hostname(), port
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ua=%s accept=%s x=%s host=%s", r.UserAgent(), r.Header.Get("Accept"), r.Header.Get("X-Probe"), r.Host)
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(strings.Repeat("x", 3*maxBody))) })
	mux.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	host, port := hostPort(t, srv.URL)
	mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("http://localhost:%d/ok", port), http.StatusFound)
	})
	tlsSrv := httptest.NewTLSServer(mux)
	t.Cleanup(tlsSrv.Close)
	_, tlsPort := hostPort(t, tlsSrv.URL)
	c := &v1.Container{Ports: []v1.ContainerPort{{Name: "web", ContainerPort: int32(port)}}}

	tests := []struct {
		name   string
		action v1.HTTPGetAction
		want   outcome
	}{
		{"ok by named port", v1.HTTPGetAction{Path: "/ok", Port: intstr.FromString("web")},
			outcome{Success, fmt.Sprintf("ua=kube-probe/1.37 accept=*/* x= host=%s:%d", host, port), false}},
		{"headers and host", v1.HTTPGetAction{Path: "/ok", Port: intstr.FromInt32(int32(port)), HTTPHeaders: []v1.HTTPHeader{
			{Name: "X-Probe", Value: "1"}, {Name: "Accept", Value: "text/plain"}, {Name: "Host", Value: "web.example"}}},
			outcome{Success, "ua=kube-probe/1.37 accept=text/plain x=1 host=web.example", false}},
		{"503", v1.HTTPGetAction{Path: "/fail", Port: intstr.FromInt32(int32(port))},
			outcome{Failure, "HTTP probe failed with statuscode: 503", false}},
		{"body limit", v1.HTTPGetAction{Path: "/big", Port: intstr.FromInt32(int32(port))},
			outcome{Success, strings.Repeat("x", maxBody), false}},
		{"same host redirect followed", v1.HTTPGetAction{Path: "/same", Port: intstr.FromInt32(int32(port))},
			outcome{Success, fmt.Sprintf("ua=kube-probe/1.37 accept=*/* x= host=%s:%d", host, port), false}},
		{"other host redirect not followed", v1.HTTPGetAction{Path: "/other", Port: intstr.FromInt32(int32(port))},
			outcome{Warning, fmt.Sprintf("Probe terminated redirects, Response body: <a href=%q>Found</a>.\n\n", fmt.Sprintf("http://localhost:%d/ok", port)), false}},
		{"https not verified", v1.HTTPGetAction{Path: "/fail", Port: intstr.FromInt32(int32(tlsPort)), Scheme: v1.URISchemeHTTPS},
			outcome{Failure, "HTTP probe failed with statuscode: 503", false}},
		{"unknown port name", v1.HTTPGetAction{Path: "/ok", Port: intstr.FromString("nope")}, outcome{Failure, "", true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, out, err := Run(context.Background(), Target{Container: c, PodIP: host}, &v1.ProbeHandler{HTTPGet: &tt.action}, 2*time.Second)
			if diff := cmp.Diff(tt.want, got(r, out, err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		req, err := NewHTTPRequest(context.Background(), &v1.HTTPGetAction{Path: "/slow", Port: intstr.FromInt32(int32(port))}, host, c)
		if err != nil {
			t.Fatal(err)
		}
		if r, out, err := HTTP(req, 100*time.Millisecond); r != Failure || err != nil || !strings.Contains(out, "Timeout") {
			t.Errorf("slow server: %s %q %v, want a failure by timeout", r, out, err)
		}
	})
}

func TestTCP(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := l.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = l.Close() })
	closedL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedL.Addr().(*net.TCPAddr).Port
	_ = closedL.Close()

	c := &v1.Container{Ports: []v1.ContainerPort{{Name: "db", ContainerPort: int32(open)}}}
	tests := []struct {
		name    string
		port    intstr.IntOrString
		host    string
		want    Result
		wantErr bool
	}{
		{"open", intstr.FromInt32(int32(open)), "", Success, false},
		{"named", intstr.FromString("db"), "127.0.0.1", Success, false},
		{"refused", intstr.FromInt32(int32(closed)), "", Failure, false},
		{"bad name", intstr.FromString("x"), "", Failure, true},
	}
	for _, tt := range tests {
		r, _, err := Run(context.Background(), Target{Container: c, PodIP: "127.0.0.1"},
			&v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: tt.port, Host: tt.host}}, time.Second)
		if r != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: %s, %v; want %s, error %t", tt.name, r, err, tt.want, tt.wantErr)
		}
	}
}

func TestGRPC(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	port := l.Addr().(*net.TCPAddr).Port

	bare, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bareSrv := grpc.NewServer()
	go func() { _ = bareSrv.Serve(bare) }()
	t.Cleanup(bareSrv.Stop)
	barePort := bare.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name    string
		port    int
		service *string
		want    outcome
	}{
		{"serving", port, nil, outcome{Success, "service healthy", false}},
		{"not serving", port, ptr.To("db"), outcome{Failure, `service unhealthy (responded with "NOT_SERVING")`, false}},
		{"unknown service", port, ptr.To("nope"), outcome{Failure, "error: health rpc probe failed: unknown service", false}},
		{"no health service", barePort, nil, outcome{Failure,
			"this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health", false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, out, err := Run(context.Background(), Target{PodIP: "127.0.0.1"},
				&v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: int32(tt.port), Service: tt.service}}, 2*time.Second)
			if diff := cmp.Diff(tt.want, got(r, out, err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
