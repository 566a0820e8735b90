package proxybench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsURL is berth's proxy metrics endpoint (kube-proxy's address),
// inside the node's network namespace.
const metricsURL = "http://127.0.0.1:10249/metrics"

// The metrics the benchmark reads, with their IPv4 series.
const (
	metricLastSync    = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
	metricRules       = "kubeproxy_sync_proxy_rules_iptables_total"
	metricFullSync    = "kubeproxy_sync_full_proxy_rules_duration_seconds"
	metricPartialSync = "kubeproxy_sync_partial_proxy_rules_duration_seconds"
	metricSyncBytes   = "berth_proxy_sync_bytes"
	metricProgramming = "kubeproxy_network_programming_duration_seconds"
	metricHeapInuse   = "go_memstats_heap_inuse_bytes"
	familyLabel       = "ip_family"
	familyIPv4        = "IPv4"
)

// histogram is a Prometheus histogram's count and sum.
type histogram struct {
	count uint64
	sum   float64
}

// since returns what was observed between earlier and h.
func (h histogram) since(earlier histogram) histogram {
	return histogram{count: h.count - earlier.count, sum: h.sum - earlier.sum}
}

// mean is the average observation (0 without any).
func (h histogram) mean() float64 {
	if h.count == 0 {
		return 0
	}
	return h.sum / float64(h.count)
}

// proxyMetrics is what berth's proxy metrics said at one instant, for IPv4.
type proxyMetrics struct {
	// lastSync is when the last successful sync ended (zero: none yet).
	lastSync time.Time
	// rules is the number of rules berth holds after it.
	rules int
	// full and partial are the durations of the syncs, in seconds.
	full, partial histogram
	// bytes are the payload sizes of the syncs.
	bytes histogram
	// programming are the EndpointSlice change-to-rules latencies, in
	// seconds, of changes that carried a trigger time.
	programming histogram
	// heapInuse is the bytes of berth's Go heap in use (all of berth, not
	// only its proxy part).
	heapInuse uint64
}

// parseMetrics reads berth's proxy metrics from the text exposition format.
func parseMetrics(r io.Reader) (proxyMetrics, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return proxyMetrics{}, fmt.Errorf("parse proxy metrics: %w", err)
	}
	var m proxyMetrics
	if g, ok := ipv4(families[metricLastSync]); ok && g.GetGauge().GetValue() > 0 {
		sec, frac := math.Modf(g.GetGauge().GetValue())
		m.lastSync = time.Unix(int64(sec), int64(frac*1e9))
	}
	if g, ok := ipv4(families[metricRules]); ok {
		m.rules = int(g.GetGauge().GetValue())
	}
	m.full = histogramOf(families[metricFullSync])
	m.partial = histogramOf(families[metricPartialSync])
	m.bytes = histogramOf(families[metricSyncBytes])
	m.programming = histogramOf(families[metricProgramming])
	if f := families[metricHeapInuse]; len(f.GetMetric()) == 1 {
		m.heapInuse = uint64(f.GetMetric()[0].GetGauge().GetValue())
	}
	return m, nil
}

// ipv4 returns the IPv4 series of a family.
func ipv4(f *dto.MetricFamily) (*dto.Metric, bool) {
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == familyLabel && l.GetValue() == familyIPv4 {
				return m, true
			}
		}
	}
	return nil, false
}

func histogramOf(f *dto.MetricFamily) histogram {
	m, ok := ipv4(f)
	if !ok {
		return histogram{}
	}
	return histogram{count: m.GetHistogram().GetSampleCount(), sum: m.GetHistogram().GetSampleSum()}
}

// metricsClient scrapes berth's proxy metrics from inside a node's network
// namespace, where berth serves them on the loopback address.
type metricsClient struct {
	http *http.Client
}

func newMetricsClient(node string) *metricsClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return bed.DialContext(ctx, node, network, addr)
		},
		// A connection would outlive a berth restart for nothing.
		DisableKeepAlives: true,
	}
	return &metricsClient{http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// scrape reads the metrics once.
func (c *metricsClient) scrape(ctx context.Context) (proxyMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return proxyMetrics{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return proxyMetrics{}, fmt.Errorf("scrape proxy metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return proxyMetrics{}, fmt.Errorf("scrape proxy metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// waitFor scrapes every interval until ok accepts the metrics and returns
// them. Scrape failures (berth starting) count as not yet.
func (c *metricsClient) waitFor(ctx context.Context, timeout time.Duration, what string, ok func(proxyMetrics) bool) (proxyMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last proxyMetrics
	var lastErr error
	err := poll(ctx, 50*time.Millisecond, func() (bool, error) {
		m, err := c.scrape(ctx)
		if err != nil {
			lastErr = err
			return false, nil
		}
		last, lastErr = m, nil
		return ok(m), nil
	})
	if err != nil {
		return last, fmt.Errorf("%s: not within %s (last: %d rules, last sync %s, scrape error %v): %w",
			what, timeout, last.rules, last.lastSync.Format(time.RFC3339Nano), lastErr, err)
	}
	return last, nil
}
