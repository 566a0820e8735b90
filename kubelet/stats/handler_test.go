package stats

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// fakeSource serves fixed summaries and counts what was asked.
type fakeSource struct {
	full, cpuAndMemory *statsapi.Summary
	err                error
	calls              []string
}

func (f *fakeSource) Summary(context.Context) (*statsapi.Summary, error) {
	f.calls = append(f.calls, "Summary")
	return f.full, f.err
}

func (f *fakeSource) CPUAndMemory(context.Context) (*statsapi.Summary, error) {
	f.calls = append(f.calls, "CPUAndMemory")
	return f.cpuAndMemory, f.err
}

func TestSummaryHandler(t *testing.T) {
	full := &statsapi.Summary{Node: statsapi.NodeStats{NodeName: "full"}}
	small := &statsapi.Summary{Node: statsapi.NodeStats{NodeName: "small"}}
	tests := []struct {
		name       string
		method     string
		url        string
		err        error
		wantStatus int
		wantNode   string
		wantCalls  []string
	}{
		{name: "full", url: "/stats/summary", wantStatus: 200, wantNode: "full", wantCalls: []string{"Summary"}},
		{name: "cpu and memory", url: "/stats/summary?only_cpu_and_memory=true", wantStatus: 200, wantNode: "small",
			wantCalls: []string{"CPUAndMemory"}},
		{name: "only exactly true", url: "/stats/summary?only_cpu_and_memory=1", wantStatus: 200, wantNode: "full",
			wantCalls: []string{"Summary"}},
		{name: "failure", url: "/stats/summary", err: errors.New("runtime down"), wantStatus: 500,
			wantCalls: []string{"Summary"}},
		{name: "post", method: http.MethodPost, url: "/stats/summary", wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{full: full, cpuAndMemory: small, err: tt.err}
			rec := httptest.NewRecorder()
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			NewSummaryHandler(src).ServeHTTP(rec, httptest.NewRequest(method, tt.url, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if diff := cmp.Diff(tt.wantCalls, src.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			if rec.Code != http.StatusOK {
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var got statsapi.Summary
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Node.NodeName != tt.wantNode {
				t.Errorf("node %q, want %q", got.Node.NodeName, tt.wantNode)
			}
		})
	}
}

func TestResourceMetrics(t *testing.T) {
	summary := wantCPUAndMemory()
	// A container whose start is unknown has no start time sample.
	summary.Pods[1].Containers = append(summary.Pods[1].Containers, statsapi.ContainerStats{Name: "nostart"})
	stamp := " " + strconv.FormatInt(t1.UnixMilli(), 10)
	want := `# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 9` + stamp + `
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="dns"} 3` + stamp + `
container_cpu_usage_seconds_total{container="sidecar",namespace="default",pod="web"} 4` + stamp + `
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="default",pod="web"} 3.2505856e+08` + stamp + `
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="dns"} 2.097152e+07` + stamp + `
container_memory_working_set_bytes{container="sidecar",namespace="default",pod="web"} 6.291456e+07` + stamp + `
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="app",namespace="default",pod="web"} 1.70420755e+09
container_start_time_seconds{container="coredns",namespace="kube-system",pod="dns"} 1.7042075e+09
container_start_time_seconds{container="sidecar",namespace="default",pod="web"} 1.70420756e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 60` + stamp + `
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 5.36870912e+09` + stamp + `
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="default",pod="web"} 15` + stamp + `
pod_cpu_usage_seconds_total{namespace="kube-system",pod="dns"} 3` + stamp + `
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="default",pod="web"} 4.2991616e+08` + stamp + `
pod_memory_working_set_bytes{namespace="kube-system",pod="dns"} 1e+08` + stamp + `
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE scrape_error gauge
scrape_error 0
`
	got := scrape(t, &fakeSource{cpuAndMemory: summary})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

func TestResourceMetricsError(t *testing.T) {
	got := scrape(t, &fakeSource{err: errors.New("runtime down")})
	for _, want := range []string{"\nscrape_error 1\n", "\nresource_scrape_error 1\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics %q, want %q", got, want)
		}
	}
	if strings.Contains(got, "node_cpu") {
		t.Errorf("metrics %q, want no node samples", got)
	}
}

// TestResourceMetricsFromProvider scrapes a Provider end to end.
func TestResourceMetricsFromProvider(t *testing.T) {
	_, _, p, _ := statsFixture(t)
	got := scrape(t, p)
	for _, want := range []string{
		`container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 7 ` + strconv.FormatInt(t0.UnixMilli(), 10),
		`pod_memory_working_set_bytes{namespace="default",pod="web"} 4.194304e+08`,
		"node_cpu_usage_seconds_total 50 ",
		"\nresource_scrape_error 0\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics do not contain %q:\n%s", want, got)
		}
	}
}

func scrape(t *testing.T, src Source) string {
	t.Helper()
	srv := httptest.NewServer(NewResourceMetricsHandler(src))
	defer srv.Close()
	resp, err := http.Get(srv.URL + ResourceMetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return string(b)
}
