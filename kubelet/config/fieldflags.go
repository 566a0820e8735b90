package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
)

// fieldFlag is a kubelet command-line flag that sets a KubeletConfiguration
// field. Upstream kubelet still honours these (deprecated in favour of the
// file), and a flag given wins over the file; a flag not given leaves the
// file's value alone.
type fieldFlag struct {
	// path is the field's JSON path in a KubeletConfiguration document,
	// to tell whether the file sets it too.
	path []string
	// boolean flags take no separate argument: --name means true.
	boolean bool
	set     func(c *KubeletConfiguration, value string) error
}

// fieldFlags are the flags of every KubeletConfiguration field berth reads
// that has one upstream, by flag name. Fields without a flag upstream
// (nodeStatusReportFrequency, nodeLeaseDurationSeconds,
// containerLogMonitorInterval, shutdownGracePeriod,
// shutdownGracePeriodCriticalPods, enableProfilingHandler, podLogsDir)
// come from the file alone.
var fieldFlags = map[string]fieldFlag{
	"container-runtime-endpoint": stringFlag(func(c *KubeletConfiguration) *string { return &c.ContainerRuntimeEndpoint }, "containerRuntimeEndpoint"),
	"pod-manifest-path":          stringFlag(func(c *KubeletConfiguration) *string { return &c.StaticPodPath }, "staticPodPath"),
	"address":                    stringFlag(func(c *KubeletConfiguration) *string { return &c.Address }, "address"),
	"tls-cert-file":              stringFlag(func(c *KubeletConfiguration) *string { return &c.TLSCertFile }, "tlsCertFile"),
	"tls-private-key-file":       stringFlag(func(c *KubeletConfiguration) *string { return &c.TLSPrivateKeyFile }, "tlsPrivateKeyFile"),
	"tls-min-version":            stringFlag(func(c *KubeletConfiguration) *string { return &c.TLSMinVersion }, "tlsMinVersion"),
	"client-ca-file":             stringFlag(func(c *KubeletConfiguration) *string { return &c.Authentication.X509.ClientCAFile }, "authentication", "x509", "clientCAFile"),
	"healthz-bind-address":       stringFlag(func(c *KubeletConfiguration) *string { return &c.HealthzBindAddress }, "healthzBindAddress"),
	"cluster-domain":             stringFlag(func(c *KubeletConfiguration) *string { return &c.ClusterDomain }, "clusterDomain"),
	"cgroup-driver":              stringFlag(func(c *KubeletConfiguration) *string { return &c.CgroupDriver }, "cgroupDriver"),
	"cgroup-root":                stringFlag(func(c *KubeletConfiguration) *string { return &c.CgroupRoot }, "cgroupRoot"),
	"container-log-max-size":     stringFlag(func(c *KubeletConfiguration) *string { return &c.ContainerLogMaxSize }, "containerLogMaxSize"),
	"kube-api-content-type":      stringFlag(func(c *KubeletConfiguration) *string { return &c.ContentType }, "contentType"),
	"authorization-mode": {path: []string{"authorization", "mode"}, set: func(c *KubeletConfiguration, v string) error {
		c.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationMode(v)
		return nil
	}},
	"resolv-conf": {path: []string{"resolvConf"}, set: func(c *KubeletConfiguration, v string) error {
		c.ResolverConfig = &v
		return nil
	}},
	"cluster-dns": {path: []string{"clusterDNS"}, set: func(c *KubeletConfiguration, v string) error {
		c.ClusterDNS = splitList(v)
		return nil
	}},
	"register-with-taints": {path: []string{"registerWithTaints"}, set: func(c *KubeletConfiguration, v string) error {
		taints, err := parseTaints(v)
		c.RegisterWithTaints = taints
		return err
	}},
	"eviction-hard":           mapFlag(func(c *KubeletConfiguration) *map[string]string { return &c.EvictionHard }, "<", "evictionHard"),
	"system-reserved":         mapFlag(func(c *KubeletConfiguration) *map[string]string { return &c.SystemReserved }, "=", "systemReserved"),
	"kube-reserved":           mapFlag(func(c *KubeletConfiguration) *map[string]string { return &c.KubeReserved }, "=", "kubeReserved"),
	"port":                    int32Flag(func(c *KubeletConfiguration) *int32 { return &c.Port }, "port"),
	"max-pods":                int32Flag(func(c *KubeletConfiguration) *int32 { return &c.MaxPods }, "maxPods"),
	"event-burst":             int32Flag(func(c *KubeletConfiguration) *int32 { return &c.EventBurst }, "eventBurst"),
	"kube-api-burst":          int32Flag(func(c *KubeletConfiguration) *int32 { return &c.KubeAPIBurst }, "kubeAPIBurst"),
	"healthz-port":            int32PtrFlag(func(c *KubeletConfiguration) **int32 { return &c.HealthzPort }, "healthzPort"),
	"event-qps":               int32PtrFlag(func(c *KubeletConfiguration) **int32 { return &c.EventRecordQPS }, "eventRecordQPS"),
	"kube-api-qps":            int32PtrFlag(func(c *KubeletConfiguration) **int32 { return &c.KubeAPIQPS }, "kubeAPIQPS"),
	"container-log-max-files": int32PtrFlag(func(c *KubeletConfiguration) **int32 { return &c.ContainerLogMaxFiles }, "containerLogMaxFiles"),
	"rotate-certificates":     boolFlag(func(c *KubeletConfiguration, b bool) { c.RotateCertificates = b }, "rotateCertificates"),
	"rotate-server-certificates": boolFlag(func(c *KubeletConfiguration, b bool) { c.ServerTLSBootstrap = b },
		"serverTLSBootstrap"),
	"anonymous-auth": boolFlag(func(c *KubeletConfiguration, b bool) { c.Authentication.Anonymous.Enabled = &b },
		"authentication", "anonymous", "enabled"),
	"authentication-token-webhook": boolFlag(func(c *KubeletConfiguration, b bool) { c.Authentication.Webhook.Enabled = &b },
		"authentication", "webhook", "enabled"),
	"cgroups-per-qos": boolFlag(func(c *KubeletConfiguration, b bool) { c.CgroupsPerQOS = &b }, "cgroupsPerQOS"),
	"cpu-cfs-quota":   boolFlag(func(c *KubeletConfiguration, b bool) { c.CPUCFSQuota = &b }, "cpuCFSQuota"),
	"sync-frequency":  durationFlag(func(c *KubeletConfiguration) *metav1.Duration { return &c.SyncFrequency }, "syncFrequency"),
	"file-check-frequency": durationFlag(func(c *KubeletConfiguration) *metav1.Duration { return &c.FileCheckFrequency },
		"fileCheckFrequency"),
	"node-status-update-frequency": durationFlag(func(c *KubeletConfiguration) *metav1.Duration { return &c.NodeStatusUpdateFrequency },
		"nodeStatusUpdateFrequency"),
	"authentication-token-webhook-cache-ttl": durationFlag(func(c *KubeletConfiguration) *metav1.Duration { return &c.Authentication.Webhook.CacheTTL },
		"authentication", "webhook", "cacheTTL"),
	"authorization-webhook-cache-authorized-ttl": durationFlag(func(c *KubeletConfiguration) *metav1.Duration {
		return &c.Authorization.Webhook.CacheAuthorizedTTL
	}, "authorization", "webhook", "cacheAuthorizedTTL"),
	"authorization-webhook-cache-unauthorized-ttl": durationFlag(func(c *KubeletConfiguration) *metav1.Duration {
		return &c.Authorization.Webhook.CacheUnauthorizedTTL
	}, "authorization", "webhook", "cacheUnauthorizedTTL"),
	"cpu-cfs-quota-period": {path: []string{"cpuCFSQuotaPeriod"}, set: func(c *KubeletConfiguration, v string) error {
		d, err := time.ParseDuration(v)
		c.CPUCFSQuotaPeriod = &metav1.Duration{Duration: d}
		return err
	}},
}

func stringFlag(field func(*KubeletConfiguration) *string, path ...string) fieldFlag {
	return fieldFlag{path: path, set: func(c *KubeletConfiguration, v string) error {
		*field(c) = v
		return nil
	}}
}

func int32Flag(field func(*KubeletConfiguration) *int32, path ...string) fieldFlag {
	return fieldFlag{path: path, set: func(c *KubeletConfiguration, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		*field(c) = int32(n)
		return err
	}}
}

func int32PtrFlag(field func(*KubeletConfiguration) **int32, path ...string) fieldFlag {
	return fieldFlag{path: path, set: func(c *KubeletConfiguration, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		*field(c) = ptr.To(int32(n))
		return err
	}}
}

func boolFlag(set func(*KubeletConfiguration, bool), path ...string) fieldFlag {
	return fieldFlag{path: path, boolean: true, set: func(c *KubeletConfiguration, v string) error {
		b := true
		if v != "" {
			var err error
			if b, err = strconv.ParseBool(v); err != nil {
				return err
			}
		}
		set(c, b)
		return nil
	}}
}

func durationFlag(field func(*KubeletConfiguration) *metav1.Duration, path ...string) fieldFlag {
	return fieldFlag{path: path, set: func(c *KubeletConfiguration, v string) error {
		d, err := time.ParseDuration(v)
		field(c).Duration = d
		return err
	}}
}

// mapFlag is a flag of "k<sep>v,..." pairs; its value replaces the file's
// map, as upstream's does.
func mapFlag(field func(*KubeletConfiguration) *map[string]string, sep string, path ...string) fieldFlag {
	return fieldFlag{path: path, set: func(c *KubeletConfiguration, v string) error {
		m, err := parseMap(v, sep)
		*field(c) = m
		return err
	}}
}

// parseMap parses "k<v,k2<v2" (sep "<", --eviction-hard) or "k=v,k2=v2"
// (sep "=", --system-reserved): the flag's value replaces the file's map.
func parseMap(v, sep string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range splitList(v) {
		k, val, ok := strings.Cut(kv, sep)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key%svalue", kv, sep)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return m, nil
}
