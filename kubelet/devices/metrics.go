package devices

import "github.com/prometheus/client_golang/prometheus"

// metrics are the device manager's Prometheus metrics, with kubelet's
// names, labels and buckets.
type metrics struct {
	registrations *prometheus.CounterVec
	allocDuration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Subsystem: "kubelet",
			Name:      "device_plugin_registration_total",
			Help:      "Cumulative number of device plugin registrations. Broken down by resource name.",
		}, []string{"resource_name"}),
		allocDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: "kubelet",
			Name:      "device_plugin_alloc_duration_seconds",
			Help:      "Duration in seconds to serve a device plugin Allocation request. Broken down by resource name.",
			Buckets:   prometheus.DefBuckets,
		}, []string{"resource_name"}),
	}
}

// Collectors returns the metrics for a Prometheus registry:
// kubelet_device_plugin_registration_total and
// kubelet_device_plugin_alloc_duration_seconds.
func (m *Manager) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.metrics.registrations, m.metrics.allocDuration}
}
