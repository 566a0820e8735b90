package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ContainerdCRICalls returns how many CRI calls node's containerd has
// answered since it started, by method (RunPodSandbox, ListContainers,
// ...), whatever client made them and however they ended: the gRPC server
// metrics containerd serves on the node's loopback. Calls the test itself
// makes count too.
func (tb *Testbed) ContainerdCRICalls(ctx context.Context, node string) (map[string]float64, error) {
	text, err := tb.scrape(ctx, node, "http://"+containerdMetrics+"/v1/metrics")
	if err != nil {
		return nil, fmt.Errorf("containerd metrics of %s: %w", node, err)
	}
	return CounterByLabel(text, "grpc_server_handled_total", "grpc_method", func(labels map[string]string) bool {
		return strings.HasPrefix(labels["grpc_service"], "runtime.v1.")
	})
}

// scrape GETs url from inside host's network namespace.
func (tb *Testbed) scrape(ctx context.Context, host, url string) ([]byte, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return tb.DialContext(ctx, host, network, addr)
		},
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", url, resp.Status, body)
	}
	return body, nil
}

// CounterByLabel sums the series of the counter name in the Prometheus
// text exposition text by the value of label, over the series keep
// accepts (all when keep is nil).
func CounterByLabel(text []byte, name, label string, keep func(labels map[string]string) bool) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := map[string]float64{}
	for _, m := range families[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if keep != nil && !keep(labels) {
			continue
		}
		out[labels[label]] += m.GetCounter().GetValue()
	}
	return out, nil
}
