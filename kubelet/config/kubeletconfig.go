package config

import (
	"bytes"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// KubeletConfiguration is the upstream type berth reads.
type KubeletConfiguration = kubeletv1beta1.KubeletConfiguration

// DecodeKubeletConfiguration decodes a KubeletConfiguration document,
// rejecting fields the type does not have (a typo must not silently fall
// back to a default), and applies upstream's defaults to what it leaves
// unset. Compose does the same for the file with its flags.
func DecodeKubeletConfiguration(data []byte) (*KubeletConfiguration, error) {
	cfg, err := decode(data)
	if err != nil {
		return nil, err
	}
	SetDefaults(cfg)
	return cfg, nil
}

// decode decodes a KubeletConfiguration document strictly, without
// defaults: what the document leaves out stays unset.
func decode(data []byte) (*KubeletConfiguration, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("empty document")
	}
	var cfg KubeletConfiguration
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	want := kubeletv1beta1.SchemeGroupVersion.String()
	if cfg.APIVersion != want || cfg.Kind != "KubeletConfiguration" {
		return nil, fmt.Errorf("apiVersion %q kind %q: want %s KubeletConfiguration", cfg.APIVersion, cfg.Kind, want)
	}
	return &cfg, nil
}

// defaultEvictionHard is upstream's hard eviction default, used when the
// configuration sets none.
var defaultEvictionHard = map[string]string{
	"memory.available":  "100Mi",
	"nodefs.available":  "10%",
	"nodefs.inodesFree": "5%",
	"imagefs.available": "15%",
}

// SetDefaults fills the fields berth uses that c leaves unset, with the
// values upstream kubelet v1.37 defaults them to.
func SetDefaults(c *KubeletConfiguration) {
	setDuration(&c.SyncFrequency, time.Minute)
	setDuration(&c.FileCheckFrequency, 20*time.Second)
	setDuration(&c.NodeStatusUpdateFrequency, 10*time.Second)
	setDuration(&c.NodeStatusReportFrequency, 5*time.Minute)
	setDuration(&c.RuntimeRequestTimeout, 2*time.Minute)
	setDuration(&c.StreamingConnectionIdleTimeout, 4*time.Hour)
	setDuration(&c.EvictionPressureTransitionPeriod, 5*time.Minute)
	if c.NodeLeaseDurationSeconds == 0 {
		c.NodeLeaseDurationSeconds = 40
	}
	if c.Address == "" {
		c.Address = "0.0.0.0"
	}
	if c.Port == 0 {
		c.Port = 10250
	}
	if c.HealthzPort == nil {
		c.HealthzPort = ptr.To[int32](10248)
	}
	if c.HealthzBindAddress == "" {
		c.HealthzBindAddress = "127.0.0.1"
	}
	if c.CgroupDriver == "" {
		c.CgroupDriver = "cgroupfs"
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/"
	}
	if c.CgroupsPerQOS == nil {
		c.CgroupsPerQOS = ptr.To(true)
	}
	if c.MaxPods == 0 {
		c.MaxPods = 110
	}
	if c.ResolverConfig == nil {
		c.ResolverConfig = ptr.To("/etc/resolv.conf")
	}
	if c.PodLogsDir == "" {
		c.PodLogsDir = "/var/log/pods"
	}
	if c.HairpinMode == "" {
		c.HairpinMode = "promiscuous-bridge"
	}
	if c.ContainerLogMaxSize == "" {
		c.ContainerLogMaxSize = "10Mi"
	}
	if c.ContainerLogMaxFiles == nil {
		c.ContainerLogMaxFiles = ptr.To[int32](5)
	}
	if c.ContainerLogMonitorInterval == nil {
		c.ContainerLogMonitorInterval = &metav1.Duration{Duration: 10 * time.Second}
	}
	if c.ImageGCHighThresholdPercent == nil {
		c.ImageGCHighThresholdPercent = ptr.To[int32](85)
	}
	if c.ImageGCLowThresholdPercent == nil {
		c.ImageGCLowThresholdPercent = ptr.To[int32](80)
	}
	if c.EvictionHard == nil {
		c.EvictionHard = map[string]string{}
		for k, v := range defaultEvictionHard {
			c.EvictionHard[k] = v
		}
	}
	if c.EventRecordQPS == nil {
		c.EventRecordQPS = ptr.To[int32](50)
	}
	if c.EventBurst == 0 {
		c.EventBurst = 100
	}
	if c.KubeAPIQPS == nil {
		c.KubeAPIQPS = ptr.To[int32](50)
	}
	if c.KubeAPIBurst == 0 {
		c.KubeAPIBurst = 100
	}
	if c.ContentType == "" {
		c.ContentType = runtime.ContentTypeProtobuf
	}
	if c.RegisterNode == nil {
		c.RegisterNode = ptr.To(true)
	}
	if c.ContainerRuntimeEndpoint == "" {
		c.ContainerRuntimeEndpoint = "unix:///run/containerd/containerd.sock"
	}
}

func setDuration(d *metav1.Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}
