package plugins

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric states, the kubelet's names for the sockets seen and the plugins
// registered.
const (
	stateDesired = "desired_state_of_world"
	stateActual  = "actual_state_of_world"
)

// Collector returns the watcher's metric for a Prometheus registry:
// plugin_manager_total_plugins{socket_path, state}, with the kubelet's name
// and labels. Each socket seen counts 1 in state "desired_state_of_world";
// each socket whose plugin is registered, 1 in "actual_state_of_world".
func (w *Watcher) Collector() prometheus.Collector {
	return &pluginCollector{w: w, desc: prometheus.NewDesc("plugin_manager_total_plugins",
		"Number of plugins in Plugin Manager", []string{"socket_path", "state"}, nil)}
}

type pluginCollector struct {
	w    *Watcher
	desc *prometheus.Desc
}

func (c *pluginCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *pluginCollector) Collect(ch chan<- prometheus.Metric) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	for path := range c.w.seen {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, path, stateDesired)
	}
	for path := range c.w.registered {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, path, stateActual)
	}
}
