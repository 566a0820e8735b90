package stats

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Paths the handlers are meant to be mounted at.
const (
	SummaryPath         = "/stats/summary"
	ResourceMetricsPath = "/metrics/resource"
)

// NewSummaryHandler returns the handler of GET /stats/summary: the summary
// as JSON, only its CPU and memory figures with ?only_cpu_and_memory=true.
// It does no authentication or authorization of its own.
func NewSummaryHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ctx := r.Context()
		get := src.Summary
		if v := r.URL.Query()["only_cpu_and_memory"]; len(v) == 1 && v[0] == "true" {
			get = src.CPUAndMemory
		}
		summary, err := get(ctx)
		if err != nil {
			klog.FromContext(ctx).Error(err, "Gathering the stats summary failed")
			http.Error(w, "Internal Error: "+err.Error(), http.StatusInternalServerError)
			return
		}
		body, err := json.Marshal(summary)
		if err != nil {
			http.Error(w, "Internal Error: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if _, err := w.Write(body); err != nil {
			klog.FromContext(ctx).V(4).Info("Writing the stats summary failed", "err", err)
		}
	})
}

// NewResourceMetricsHandler returns the handler of GET /metrics/resource:
// the CPU and memory figures in the Prometheus text format under the
// kubelet's names. It does no authentication or authorization of its own.
func NewResourceMetricsHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A registry per request lets the collector gather under the
		// request's context; it holds one collector and costs little.
		reg := prometheus.NewRegistry()
		if err := reg.Register(&resourceCollector{ctx: r.Context(), src: src}); err != nil {
			http.Error(w, "Internal Error: "+err.Error(), http.StatusInternalServerError)
			return
		}
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
	})
}

// The kubelet's resource metrics; the help texts carry their stability
// level as the kubelet's do.
var (
	nodeCPUDesc = prometheus.NewDesc("node_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	nodeMemoryDesc = prometheus.NewDesc("node_memory_working_set_bytes",
		"[STABLE] Current working set of the node in bytes", nil, nil)
	containerCPUDesc = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the container in core-seconds",
		[]string{"container", "pod", "namespace"}, nil)
	containerMemoryDesc = prometheus.NewDesc("container_memory_working_set_bytes",
		"[STABLE] Current working set of the container in bytes",
		[]string{"container", "pod", "namespace"}, nil)
	containerStartDesc = prometheus.NewDesc("container_start_time_seconds",
		"[STABLE] Start time of the container since unix epoch in seconds",
		[]string{"container", "pod", "namespace"}, nil)
	podCPUDesc = prometheus.NewDesc("pod_cpu_usage_seconds_total",
		"[STABLE] Cumulative cpu time consumed by the pod in core-seconds", []string{"pod", "namespace"}, nil)
	podMemoryDesc = prometheus.NewDesc("pod_memory_working_set_bytes",
		"[STABLE] Current working set of the pod in bytes", []string{"pod", "namespace"}, nil)
	scrapeErrorDesc = prometheus.NewDesc("scrape_error",
		"[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
	resourceScrapeErrorDesc = prometheus.NewDesc("resource_scrape_error",
		"[STABLE] 1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

// resourceCollector turns the CPU and memory summary into metrics. It keeps
// no metric between scrapes, so pods that are gone leave nothing behind.
type resourceCollector struct {
	ctx context.Context
	src Source
}

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeCPUDesc, nodeMemoryDesc, containerCPUDesc, containerMemoryDesc,
		containerStartDesc, podCPUDesc, podMemoryDesc, scrapeErrorDesc, resourceScrapeErrorDesc} {
		ch <- d
	}
}

func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	failed := 0.0
	defer func() {
		send(ch, time.Time{}, scrapeErrorDesc, prometheus.GaugeValue, failed)
		send(ch, time.Time{}, resourceScrapeErrorDesc, prometheus.GaugeValue, failed)
	}()
	s, err := c.src.CPUAndMemory(c.ctx)
	if err != nil {
		klog.FromContext(c.ctx).Error(err, "Gathering resource metrics failed")
		failed = 1
		return
	}
	sendCPU(ch, nodeCPUDesc, s.Node.CPU)
	sendMemory(ch, nodeMemoryDesc, s.Node.Memory)
	for _, pod := range s.Pods {
		ref := pod.PodRef
		for _, ctr := range pod.Containers {
			if ctr.StartTime.Unix() > 0 {
				send(ch, time.Time{}, containerStartDesc, prometheus.GaugeValue,
					float64(ctr.StartTime.UnixNano())/float64(time.Second), ctr.Name, ref.Name, ref.Namespace)
			}
			sendCPU(ch, containerCPUDesc, ctr.CPU, ctr.Name, ref.Name, ref.Namespace)
			sendMemory(ch, containerMemoryDesc, ctr.Memory, ctr.Name, ref.Name, ref.Namespace)
		}
		sendCPU(ch, podCPUDesc, pod.CPU, ref.Name, ref.Namespace)
		sendMemory(ch, podMemoryDesc, pod.Memory, ref.Name, ref.Namespace)
	}
}

func sendCPU(ch chan<- prometheus.Metric, d *prometheus.Desc, cpu *statsapi.CPUStats, labels ...string) {
	if cpu == nil || cpu.UsageCoreNanoSeconds == nil {
		return
	}
	send(ch, cpu.Time.Time, d, prometheus.CounterValue,
		float64(*cpu.UsageCoreNanoSeconds)/float64(time.Second), labels...)
}

func sendMemory(ch chan<- prometheus.Metric, d *prometheus.Desc, mem *statsapi.MemoryStats, labels ...string) {
	if mem == nil || mem.WorkingSetBytes == nil {
		return
	}
	send(ch, mem.Time.Time, d, prometheus.GaugeValue, float64(*mem.WorkingSetBytes), labels...)
}

// send sends one sample, stamped with at unless at is zero.
func send(ch chan<- prometheus.Metric, at time.Time, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(d, err)
		return
	}
	if !at.IsZero() {
		m = prometheus.NewMetricWithTimestamp(at, m)
	}
	ch <- m
}
