package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	testingclock "k8s.io/utils/clock/testing"
)

func TestFreshness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const timeout = time.Minute
	tests := []struct {
		name  string
		steps []string // "queue", "update", or a duration to advance
		want  Status
	}{
		{name: "fresh start is healthy", want: Status{Healthy: true, CurrentTime: t0}},
		{name: "queued within the timeout", steps: []string{"queue", "59s"}, want: Status{Healthy: true, CurrentTime: t0.Add(59 * time.Second)}},
		{name: "queued past the timeout", steps: []string{"queue", "60s"}, want: Status{Healthy: false, CurrentTime: t0.Add(time.Minute)}},
		{name: "the oldest queued update counts", steps: []string{"queue", "30s", "queue", "30s"}, want: Status{Healthy: false, CurrentTime: t0.Add(time.Minute)}},
		{name: "an update clears the queue", steps: []string{"queue", "50s", "update", "50s"},
			want: Status{Healthy: true, LastUpdated: t0.Add(50 * time.Second), CurrentTime: t0.Add(100 * time.Second)}},
		{name: "no queue: healthy however old", steps: []string{"update", "10h"},
			want: Status{Healthy: true, LastUpdated: t0, CurrentTime: t0.Add(10 * time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testingclock.NewFakePassiveClock(t0)
			f := NewFreshness(timeout, clk)
			for _, s := range tt.steps {
				switch s {
				case "queue":
					f.QueuedUpdate()
				case "update":
					f.Updated()
				default:
					d, err := time.ParseDuration(s)
					if err != nil {
						t.Fatal(err)
					}
					clk.SetTime(clk.Now().Add(d))
				}
			}
			if diff := cmp.Diff(tt.want, f.Status()); diff != "" {
				t.Fatalf("Status (-want +got):\n%s", diff)
			}
		})
	}
}

type fakeSource struct {
	status   Status
	eligible bool
}

func (f fakeSource) Health() Status     { return f.status }
func (f fakeSource) NodeEligible() bool { return f.eligible }

func TestHandler(t *testing.T) {
	last, now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	tests := []struct {
		name     string
		path     string
		src      fakeSource
		wantCode int
		wantBody map[string]any
	}{{
		name: "healthy: lastUpdated is now", path: "/healthz",
		src:      fakeSource{status: Status{LastUpdated: last, CurrentTime: now, Healthy: true}, eligible: true},
		wantCode: http.StatusOK,
		wantBody: map[string]any{"lastUpdated": "2026-01-01T00:01:00Z", "currentTime": "2026-01-01T00:01:00Z", "nodeEligible": true, "healthy": true},
	}, {
		name: "stale", path: "/healthz",
		src:      fakeSource{status: Status{LastUpdated: last, CurrentTime: now}, eligible: true},
		wantCode: http.StatusServiceUnavailable,
		wantBody: map[string]any{"lastUpdated": "2026-01-01T00:00:00Z", "currentTime": "2026-01-01T00:01:00Z", "nodeEligible": true, "healthy": false},
	}, {
		name: "node not eligible", path: "/healthz",
		src:      fakeSource{status: Status{LastUpdated: last, CurrentTime: now, Healthy: true}},
		wantCode: http.StatusServiceUnavailable,
		wantBody: map[string]any{"lastUpdated": "2026-01-01T00:00:00Z", "currentTime": "2026-01-01T00:01:00Z", "nodeEligible": false, "healthy": true},
	}, {
		name: "livez ignores eligibility", path: "/livez",
		src:      fakeSource{status: Status{LastUpdated: last, CurrentTime: now, Healthy: true}},
		wantCode: http.StatusOK,
		wantBody: map[string]any{"lastUpdated": "2026-01-01T00:01:00Z", "currentTime": "2026-01-01T00:01:00Z", "healthy": true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			NewHandler(tt.src).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			got := []any{rec.Code, rec.Header().Get("Content-Type"), body}
			want := []any{tt.wantCode, "application/json", tt.wantBody}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

// loopback listens on 127.0.0.1 whatever port is asked for, and records
// which port got which address.
type loopback struct {
	mu    sync.Mutex
	addrs map[string]string
	fail  map[string]bool
}

func (l *loopback) listen(ctx context.Context, network, address string) (net.Listener, error) {
	if l.fail[address] {
		return nil, errors.New("address already in use")
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addrs[address] = ln.Addr().String()
	return ln, nil
}

func (l *loopback) url(t *testing.T, address string) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.addrs[address]
	if !ok {
		t.Fatalf("nothing listens for %s", address)
	}
	return "http://" + a + "/"
}

func get(t *testing.T, url string) (int, string, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func TestServiceServer(t *testing.T) {
	ctx := context.Background()
	lb := &loopback{addrs: map[string]string{}, fail: map[string]bool{"0.0.0.0:32002": true}}
	healthy := true
	var mu sync.Mutex
	recorder := record.NewFakeRecorder(10)
	s := NewServiceServer(ServiceServerConfig{
		Listen:       lb.listen,
		ProxyHealthy: func() bool { mu.Lock(); defer mu.Unlock(); return healthy },
		Recorder:     recorder,
	})
	t.Cleanup(func() { _ = s.Close() })
	web := types.NamespacedName{Namespace: "ns", Name: "web"}
	broken := types.NamespacedName{Namespace: "ns", Name: "broken"}

	err := s.SyncServices(ctx, map[types.NamespacedName]uint16{web: 32001, broken: 32002})
	if err == nil || !strings.Contains(err.Error(), "32002") {
		t.Fatalf("SyncServices: %v, want the failure of port 32002", err)
	}
	if got := <-recorder.Events; !strings.HasPrefix(got, "Warning FailedToStartServiceHealthcheck") {
		t.Errorf("event %q", got)
	}
	url := lb.url(t, "0.0.0.0:32001")

	wantBody := func(n int, healthy bool) string {
		b, _ := json.MarshalIndent(map[string]any{
			"service":             map[string]string{"namespace": "ns", "name": "web"},
			"localEndpoints":      n,
			"serviceProxyHealthy": healthy,
		}, "", "\t")
		return string(b)
	}
	check := func(step string, wantCode int, wantBodyText string) {
		t.Helper()
		code, body, err := get(t, url)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		var gotJSON, wantJSON any
		_ = json.Unmarshal([]byte(body), &gotJSON)
		_ = json.Unmarshal([]byte(wantBodyText), &wantJSON)
		if diff := cmp.Diff([]any{wantCode, wantJSON}, []any{code, gotJSON}); diff != "" {
			t.Fatalf("%s: (-want +got):\n%s", step, diff)
		}
	}
	check("no endpoints yet", http.StatusServiceUnavailable, wantBody(0, true))
	if err := s.SyncEndpoints(map[types.NamespacedName]int{web: 2}); err != nil {
		t.Fatal(err)
	}
	check("two local endpoints", http.StatusOK, wantBody(2, true))
	mu.Lock()
	healthy = false
	mu.Unlock()
	check("proxy unhealthy", http.StatusServiceUnavailable, wantBody(2, false))

	// The service goes away: its port closes.
	if err := s.SyncServices(ctx, map[types.NamespacedName]uint16{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, url); err == nil {
		t.Fatal("health check still answers after its service went away")
	}
}

func TestServeStopsWithContext(t *testing.T) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	src := fakeSource{status: Status{Healthy: true}, eligible: true}
	go func() { done <- serveListener(ctx, "healthz", ln, NewHandler(src)) }()
	code, _, err := get(t, "http://"+ln.Addr().String()+"/healthz")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /healthz: %d, %v", code, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestServeBadAddress(t *testing.T) {
	if err := Serve(context.Background(), "healthz", "256.0.0.1:1", http.NotFoundHandler()); err == nil {
		t.Fatal("Serve on a bad address succeeded")
	}
}
