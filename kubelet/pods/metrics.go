package pods

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
)

// podMetrics are the pod manager's Prometheus metrics, with the names and
// labels kubelet gives them.
type podMetrics struct {
	startDuration prometheus.Histogram
	runningPods   prometheus.GaugeFunc
	containers    *containerStates
}

func newPodMetrics(m *Manager) *podMetrics {
	return &podMetrics{
		startDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Subsystem: "kubelet",
			Name:      "pod_start_duration_seconds",
			Help:      "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
			Buckets:   []float64{0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600},
		}),
		runningPods: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Subsystem: "kubelet",
			Name:      "running_pods",
			Help:      "Number of pods that have a running pod sandbox",
		}, func() float64 { return float64(m.RunningPods()) }),
		containers: &containerStates{m: m, desc: prometheus.NewDesc("kubelet_running_containers",
			"Number of containers currently running", []string{"container_state"}, nil)},
	}
}

// Collectors returns the pod manager's metrics for a Prometheus registry:
// kubelet_pod_start_duration_seconds, kubelet_running_pods and
// kubelet_running_containers.
func (m *Manager) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.metrics.startDuration, m.metrics.runningPods, m.metrics.containers}
}

// containerStates collects kubelet_running_containers from the last relist.
type containerStates struct {
	m    *Manager
	desc *prometheus.Desc
}

func (c *containerStates) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *containerStates) Collect(ch chan<- prometheus.Metric) {
	counts := c.m.relister.ContainerStates()
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
}

// Pods returns the pods the manager runs, as their source last gave them
// (the API, or the static pod files), sorted by namespace and name: what
// kubelet's /pods endpoint lists.
func (m *Manager) Pods() []*v1.Pod {
	m.mu.Lock()
	out := make([]*v1.Pod, 0, len(m.workers))
	for _, w := range m.workers {
		if w.pod != nil && !w.removed {
			out = append(out, w.pod)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b *v1.Pod) int {
		if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
