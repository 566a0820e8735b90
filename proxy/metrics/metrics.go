package metrics

import (
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddress is kube-proxy's metrics address.
const DefaultAddress = "127.0.0.1:10249"

// Labels of the metrics.
const (
	// LabelFamily is the IP family: "IPv4" or "IPv6", as kube-proxy.
	LabelFamily = "ip_family"
	// LabelTable is the rule table; berth's backends report one total,
	// under TableAll.
	LabelTable = "table"
	// TableAll is the table label of berth's rule count.
	TableAll = "all"
)

// Metrics are the proxy's collectors, registered on their own registry.
type Metrics struct {
	// SyncDuration is kubeproxy_sync_proxy_rules_duration_seconds: how
	// long each sync (full or partial) took.
	SyncDuration *prometheus.HistogramVec
	// FullSyncDuration and PartialSyncDuration split SyncDuration by kind.
	FullSyncDuration, PartialSyncDuration *prometheus.HistogramVec
	// NetworkProgramming is kubeproxy_network_programming_duration_seconds:
	// from an EndpointSlice change to its rules being in place.
	NetworkProgramming *prometheus.HistogramVec
	// LastSync is kubeproxy_sync_proxy_rules_last_timestamp_seconds: when
	// the last successful sync ended.
	LastSync *prometheus.GaugeVec
	// Rules is kubeproxy_sync_proxy_rules_iptables_total: the rules the
	// backend holds after the last sync.
	Rules *prometheus.GaugeVec
	// SyncBytes is berth_proxy_sync_bytes: the size of what each sync sent
	// to the kernel.
	SyncBytes *prometheus.HistogramVec

	registry *prometheus.Registry
}

// syncBuckets are kube-proxy's: 1 ms to 16 s, doubling.
var syncBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

// New returns the metrics, registered on a new registry together with the
// Go and process collectors.
func New() *Metrics {
	hist := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kubeproxy", Name: name, Help: help, Buckets: buckets,
		}, []string{LabelFamily})
	}
	m := &Metrics{
		SyncDuration:        hist("sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds", syncBuckets),
		FullSyncDuration:    hist("sync_full_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for full resyncs", syncBuckets),
		PartialSyncDuration: hist("sync_partial_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for partial resyncs", syncBuckets),
		NetworkProgramming:  hist("network_programming_duration_seconds", "In Cluster Network Programming Latency in seconds", programmingBuckets()),
		LastSync: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kubeproxy", Name: "sync_proxy_rules_last_timestamp_seconds",
			Help: "The last time proxy rules were successfully synced",
		}, []string{LabelFamily}),
		Rules: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kubeproxy", Name: "sync_proxy_rules_iptables_total",
			Help: "Total number of rules owned by the proxy",
		}, []string{LabelTable, LabelFamily}),
		SyncBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "berth", Name: "proxy_sync_bytes",
			Help:    "Size in bytes of what a proxy rules sync sent to the kernel",
			Buckets: prometheus.ExponentialBuckets(256, 4, 10),
		}, []string{LabelFamily}),
		registry: prometheus.NewRegistry(),
	}
	m.registry.MustRegister(
		m.SyncDuration, m.FullSyncDuration, m.PartialSyncDuration, m.NetworkProgramming,
		m.LastSync, m.Rules, m.SyncBytes,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// programmingBuckets are kube-proxy's: 0.25 s and 0.5 s, every second to a
// minute, then coarser up to 5 minutes.
func programmingBuckets() []float64 {
	return slices.Concat(
		prometheus.LinearBuckets(0.25, 0.25, 2),
		prometheus.LinearBuckets(1, 1, 59),
		prometheus.LinearBuckets(60, 5, 12),
		prometheus.LinearBuckets(120, 30, 7),
	)
}

// Registry returns the private registry the metrics are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry at any path (mount it on /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Sync is one family's successful backend sync, for ObserveSync.
type Sync struct {
	// Family is the ip_family label value ("IPv4" or "IPv6").
	Family string
	// Full tells whether it was a full sync.
	Full bool
	// Took is how long the sync took.
	Took time.Duration
	// Ended is when it ended.
	Ended time.Time
	// Rules and Bytes are the backend's SyncResult.
	Rules, Bytes int
}

// ObserveSync records a successful sync.
func (m *Metrics) ObserveSync(s Sync) {
	secs := s.Took.Seconds()
	m.SyncDuration.WithLabelValues(s.Family).Observe(secs)
	if s.Full {
		m.FullSyncDuration.WithLabelValues(s.Family).Observe(secs)
	} else {
		m.PartialSyncDuration.WithLabelValues(s.Family).Observe(secs)
	}
	m.LastSync.WithLabelValues(s.Family).Set(float64(s.Ended.UnixNano()) / 1e9)
	m.Rules.WithLabelValues(TableAll, s.Family).Set(float64(s.Rules))
	m.SyncBytes.WithLabelValues(s.Family).Observe(float64(s.Bytes))
}
