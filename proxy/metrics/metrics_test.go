package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestObserveSync(t *testing.T) {
	m := New()
	m.ObserveSync(Sync{Family: "IPv4", Full: true, Took: 20 * time.Millisecond, Ended: time.Unix(1700000000, 0), Rules: 42, Bytes: 4096})
	m.ObserveSync(Sync{Family: "IPv4", Full: false, Took: 2 * time.Millisecond, Ended: time.Unix(1700000001, 0), Rules: 43, Bytes: 512})
	m.NetworkProgramming.WithLabelValues("IPv4").Observe(1.5)

	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	// name{labels} -> value (gauges) or sample count (histograms).
	got := map[string]float64{}
	for _, mf := range families {
		if !strings.HasPrefix(mf.GetName(), "kubeproxy_") && !strings.HasPrefix(mf.GetName(), "berth_") {
			continue
		}
		for _, metric := range mf.GetMetric() {
			key := mf.GetName() + "{"
			for _, l := range metric.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			key += "}"
			if g := metric.GetGauge(); g != nil {
				got[key] = g.GetValue()
			}
			if h := metric.GetHistogram(); h != nil {
				got[key] = float64(h.GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"kubeproxy_sync_proxy_rules_duration_seconds{ip_family=IPv4,}":         2,
		"kubeproxy_sync_full_proxy_rules_duration_seconds{ip_family=IPv4,}":    1,
		"kubeproxy_sync_partial_proxy_rules_duration_seconds{ip_family=IPv4,}": 1,
		"kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=IPv4,}":   1700000001,
		"kubeproxy_sync_proxy_rules_iptables_total{ip_family=IPv4,table=all,}": 43,
		"kubeproxy_network_programming_duration_seconds{ip_family=IPv4,}":      1,
		"berth_proxy_sync_bytes{ip_family=IPv4,}":                              2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("metrics (-want +got):\n%s", diff)
	}
}

func TestHandler(t *testing.T) {
	m := New()
	m.ObserveSync(Sync{Family: "IPv6", Full: true, Ended: time.Unix(1, 0)})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("code %d", rec.Code)
	}
	for _, want := range []string{
		`kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv6"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestPrivateRegistries(t *testing.T) {
	// Two instances must not collide: nothing is registered globally.
	a, b := New(), New()
	a.ObserveSync(Sync{Family: "IPv4"})
	if fams, _ := b.Registry().Gather(); len(fams) == 0 {
		t.Fatal("second registry is empty")
	}
}
