package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// KubeProxyConfiguration is the upstream type berth reads.
type KubeProxyConfiguration = kubeproxyv1alpha1.KubeProxyConfiguration

// Kind is the kind of a KubeProxyConfiguration document.
const Kind = "KubeProxyConfiguration"

// ConfigMapKey is the key of the kube-system/kube-proxy ConfigMap that
// holds the KubeProxyConfiguration (kubeadm's layout).
const ConfigMapKey = "config.conf"

// ErrNoConfig: the ConfigMap has no ConfigMapKey.
var ErrNoConfig = errors.New("no " + ConfigMapKey + " in the kube-proxy ConfigMap")

// Load reads berth's KubeProxyConfiguration file. It is strict (a
// misspelt field is an error, not a silent default) and applies no
// defaults: fields the file leaves unset stay unset for Merge.
func Load(path string) (*KubeProxyConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read kube-proxy configuration: %w", err)
	}
	cfg, err := decode(data, true)
	if err != nil {
		return nil, fmt.Errorf("kube-proxy configuration %s: %w", path, err)
	}
	return cfg, nil
}

// FromConfigMap decodes the data of the cluster's kube-proxy ConfigMap. It
// is lenient about unknown fields: the cluster's kube-proxy may be newer
// than the type berth was built with, and its ConfigMap is not berth's to
// fix. No defaults are applied.
func FromConfigMap(data map[string]string) (*KubeProxyConfiguration, error) {
	doc, ok := data[ConfigMapKey]
	if !ok {
		return nil, ErrNoConfig
	}
	cfg, err := decode([]byte(doc), false)
	if err != nil {
		return nil, fmt.Errorf("kube-proxy ConfigMap: %w", err)
	}
	return cfg, nil
}

func decode(data []byte, strict bool) (*KubeProxyConfiguration, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty document")
	}
	var cfg KubeProxyConfiguration
	unmarshal := func(y []byte, o any) error { return yaml.Unmarshal(y, o) }
	if strict {
		unmarshal = func(y []byte, o any) error { return yaml.UnmarshalStrict(y, o) }
	}
	if err := unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	want := kubeproxyv1alpha1.SchemeGroupVersion.String()
	if cfg.APIVersion != want || cfg.Kind != Kind {
		return nil, fmt.Errorf("apiVersion %q kind %q: want %s %s", cfg.APIVersion, cfg.Kind, want, Kind)
	}
	return &cfg, nil
}

// Merge returns file with every field it leaves unset taken from cluster
// (the cluster's ConfigMap). Unset means the zero value: a false bool, an
// empty string or list, a zero duration, a nil pointer; so a file cannot
// turn off a boolean the cluster turns on. Maps (feature gates) are merged
// key by key, the file's keys winning. Either argument may be nil; neither
// is modified.
func Merge(file, cluster *KubeProxyConfiguration) *KubeProxyConfiguration {
	out := &KubeProxyConfiguration{}
	if file != nil {
		out = file.DeepCopy()
	}
	if cluster != nil {
		mergeValue(reflect.ValueOf(out).Elem(), reflect.ValueOf(cluster.DeepCopy()).Elem())
	}
	return out
}

// mergeValue fills the unset parts of dst from src (a private copy, so
// that dst may take its memory).
func mergeValue(dst, src reflect.Value) {
	switch dst.Kind() {
	case reflect.Struct:
		if !allExported(dst.Type()) {
			// A value with private state (a resource.Quantity) is set
			// whole or not at all.
			if dst.IsZero() {
				dst.Set(src)
			}
			return
		}
		for i := range dst.NumField() {
			mergeValue(dst.Field(i), src.Field(i))
		}
	case reflect.Map:
		if dst.IsNil() {
			dst.Set(src)
			return
		}
		iter := src.MapRange()
		for iter.Next() {
			if !dst.MapIndex(iter.Key()).IsValid() {
				dst.SetMapIndex(iter.Key(), iter.Value())
			}
		}
	default:
		if dst.IsZero() {
			dst.Set(src)
		}
	}
}

func allExported(t reflect.Type) bool {
	for i := range t.NumField() {
		if !t.Field(i).IsExported() {
			return false
		}
	}
	return true
}

// SetDefaults fills the fields berth uses that c leaves unset with
// kube-proxy v1.37's defaults.
func SetDefaults(c *KubeProxyConfiguration) {
	if c.BindAddress == "" {
		c.BindAddress = "0.0.0.0"
	}
	healthzHost, metricsHost := "0.0.0.0", "127.0.0.1"
	if isIPv6(c.BindAddress) {
		healthzHost, metricsHost = "::", "::1"
	}
	c.HealthzBindAddress = withPort(c.HealthzBindAddress, healthzHost, 10256)
	c.MetricsBindAddress = withPort(c.MetricsBindAddress, metricsHost, 10249)
	setDuration(&c.IPTables.SyncPeriod, 30*time.Second)
	setDuration(&c.IPTables.MinSyncPeriod, time.Second)
	setDuration(&c.IPVS.SyncPeriod, 30*time.Second)
	setDuration(&c.NFTables.SyncPeriod, 30*time.Second)
	setDuration(&c.NFTables.MinSyncPeriod, time.Second)
	setDuration(&c.ConfigSyncPeriod, 15*time.Minute)
	if c.IPTables.LocalhostNodePorts == nil {
		c.IPTables.LocalhostNodePorts = ptr.To(true)
	}
	if c.IPTables.MasqueradeBit == nil {
		c.IPTables.MasqueradeBit = ptr.To[int32](14)
	}
	if c.NFTables.MasqueradeBit == nil {
		c.NFTables.MasqueradeBit = ptr.To[int32](14)
	}
	if c.Conntrack.MaxPerCore == nil {
		c.Conntrack.MaxPerCore = ptr.To[int32](32 * 1024)
	}
	if c.Conntrack.Min == nil {
		c.Conntrack.Min = ptr.To[int32](128 * 1024)
	}
	if c.Conntrack.TCPEstablishedTimeout == nil {
		c.Conntrack.TCPEstablishedTimeout = &metav1.Duration{Duration: 24 * time.Hour}
	}
	if c.Conntrack.TCPCloseWaitTimeout == nil {
		c.Conntrack.TCPCloseWaitTimeout = &metav1.Duration{Duration: time.Hour}
	}
	if c.FeatureGates == nil {
		c.FeatureGates = map[string]bool{}
	}
}

func setDuration(d *metav1.Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}
