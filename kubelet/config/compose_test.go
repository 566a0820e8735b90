package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
)

const header = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"

// fieldCase is one KubeletConfiguration field berth reads, and what each
// source gives it.
type fieldCase struct {
	// file is the YAML that sets the field in the file.
	file string
	// flag is the kubelet flag that sets it, "" for a field without one
	// upstream.
	flag string
	get  func(*KubeletConfiguration) any
	// fromFile, fromFlag and byDefault are the field's value with the file
	// only, the flag only (also with both) and with neither. byDefault is
	// nil where the consumer defaults an unset field (kubelet/server for
	// authentication, kubelet/pods for the CFS quota, ...).
	fromFile, fromFlag, byDefault any
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// fieldCases are every KubeletConfiguration field berth reads, by JSON path.
var fieldCases = map[string]fieldCase{
	"containerRuntimeEndpoint": {"containerRuntimeEndpoint: unix:///run/alt/containerd.sock", "--container-runtime-endpoint=unix:///run/flag.sock",
		func(c *KubeletConfiguration) any { return c.ContainerRuntimeEndpoint },
		"unix:///run/alt/containerd.sock", "unix:///run/flag.sock", "unix:///run/containerd/containerd.sock"},
	"staticPodPath": {"staticPodPath: /etc/kubernetes/manifests", "--pod-manifest-path=/srv/manifests",
		func(c *KubeletConfiguration) any { return c.StaticPodPath }, "/etc/kubernetes/manifests", "/srv/manifests", ""},
	"podLogsDir": {"podLogsDir: /srv/logs", "",
		func(c *KubeletConfiguration) any { return c.PodLogsDir }, "/srv/logs", nil, "/var/log/pods"},
	"syncFrequency": {"syncFrequency: 30s", "--sync-frequency=2m",
		func(c *KubeletConfiguration) any { return c.SyncFrequency.Duration }, 30 * time.Second, 2 * time.Minute, time.Minute},
	"fileCheckFrequency": {"fileCheckFrequency: 5s", "--file-check-frequency=7s",
		func(c *KubeletConfiguration) any { return c.FileCheckFrequency.Duration }, 5 * time.Second, 7 * time.Second, 20 * time.Second},
	"address": {"address: 192.0.2.1", "--address=192.0.2.2",
		func(c *KubeletConfiguration) any { return c.Address }, "192.0.2.1", "192.0.2.2", "0.0.0.0"},
	"port": {"port: 10251", "--port=10252",
		func(c *KubeletConfiguration) any { return c.Port }, int32(10251), int32(10252), int32(10250)},
	"tlsCertFile": {"tlsCertFile: /a.crt", "--tls-cert-file=/b.crt",
		func(c *KubeletConfiguration) any { return c.TLSCertFile }, "/a.crt", "/b.crt", ""},
	"tlsPrivateKeyFile": {"tlsPrivateKeyFile: /a.key", "--tls-private-key-file=/b.key",
		func(c *KubeletConfiguration) any { return c.TLSPrivateKeyFile }, "/a.key", "/b.key", ""},
	"tlsMinVersion": {"tlsMinVersion: VersionTLS13", "--tls-min-version=VersionTLS12",
		func(c *KubeletConfiguration) any { return c.TLSMinVersion }, "VersionTLS13", "VersionTLS12", ""},
	"rotateCertificates": {"rotateCertificates: true", "--rotate-certificates=false",
		func(c *KubeletConfiguration) any { return c.RotateCertificates }, true, false, false},
	"serverTLSBootstrap": {"serverTLSBootstrap: true", "--rotate-server-certificates=false",
		func(c *KubeletConfiguration) any { return c.ServerTLSBootstrap }, true, false, false},
	"authentication.anonymous.enabled": {"authentication:\n  anonymous:\n    enabled: true", "--anonymous-auth=false",
		func(c *KubeletConfiguration) any { return deref(c.Authentication.Anonymous.Enabled) }, true, false, nil},
	"authentication.webhook.enabled": {"authentication:\n  webhook:\n    enabled: false", "--authentication-token-webhook",
		func(c *KubeletConfiguration) any { return deref(c.Authentication.Webhook.Enabled) }, false, true, nil},
	"authentication.webhook.cacheTTL": {"authentication:\n  webhook:\n    cacheTTL: 1m", "--authentication-token-webhook-cache-ttl=3m",
		func(c *KubeletConfiguration) any { return c.Authentication.Webhook.CacheTTL.Duration }, time.Minute, 3 * time.Minute, time.Duration(0)},
	"authentication.x509.clientCAFile": {"authentication:\n  x509:\n    clientCAFile: /ca.crt", "--client-ca-file=/other-ca.crt",
		func(c *KubeletConfiguration) any { return c.Authentication.X509.ClientCAFile }, "/ca.crt", "/other-ca.crt", ""},
	"authorization.mode": {"authorization:\n  mode: AlwaysAllow", "--authorization-mode=Webhook",
		func(c *KubeletConfiguration) any { return string(c.Authorization.Mode) }, "AlwaysAllow", "Webhook", ""},
	"authorization.webhook.cacheAuthorizedTTL": {"authorization:\n  webhook:\n    cacheAuthorizedTTL: 1m", "--authorization-webhook-cache-authorized-ttl=2m",
		func(c *KubeletConfiguration) any { return c.Authorization.Webhook.CacheAuthorizedTTL.Duration }, time.Minute, 2 * time.Minute, time.Duration(0)},
	"authorization.webhook.cacheUnauthorizedTTL": {"authorization:\n  webhook:\n    cacheUnauthorizedTTL: 10s", "--authorization-webhook-cache-unauthorized-ttl=20s",
		func(c *KubeletConfiguration) any { return c.Authorization.Webhook.CacheUnauthorizedTTL.Duration }, 10 * time.Second, 20 * time.Second, time.Duration(0)},
	"eventRecordQPS": {"eventRecordQPS: 5", "--event-qps=6",
		func(c *KubeletConfiguration) any { return deref(c.EventRecordQPS) }, int32(5), int32(6), int32(50)},
	"eventBurst": {"eventBurst: 7", "--event-burst=8",
		func(c *KubeletConfiguration) any { return c.EventBurst }, int32(7), int32(8), int32(100)},
	"healthzPort": {"healthzPort: 10001", "--healthz-port=10002",
		func(c *KubeletConfiguration) any { return deref(c.HealthzPort) }, int32(10001), int32(10002), int32(10248)},
	"healthzBindAddress": {"healthzBindAddress: 0.0.0.0", "--healthz-bind-address=192.0.2.3",
		func(c *KubeletConfiguration) any { return c.HealthzBindAddress }, "0.0.0.0", "192.0.2.3", "127.0.0.1"},
	"clusterDomain": {"clusterDomain: cluster.local", "--cluster-domain=example.internal",
		func(c *KubeletConfiguration) any { return c.ClusterDomain }, "cluster.local", "example.internal", ""},
	"clusterDNS": {"clusterDNS: [10.96.0.10]", "--cluster-dns=10.0.0.10,fd00::a",
		func(c *KubeletConfiguration) any { return c.ClusterDNS }, []string{"10.96.0.10"}, []string{"10.0.0.10", "fd00::a"}, []string(nil)},
	"nodeStatusUpdateFrequency": {"nodeStatusUpdateFrequency: 4s", "--node-status-update-frequency=6s",
		func(c *KubeletConfiguration) any { return c.NodeStatusUpdateFrequency.Duration }, 4 * time.Second, 6 * time.Second, 10 * time.Second},
	"nodeStatusReportFrequency": {"nodeStatusReportFrequency: 1m", "",
		func(c *KubeletConfiguration) any { return c.NodeStatusReportFrequency.Duration }, time.Minute, nil, 5 * time.Minute},
	"nodeLeaseDurationSeconds": {"nodeLeaseDurationSeconds: 20", "",
		func(c *KubeletConfiguration) any { return c.NodeLeaseDurationSeconds }, int32(20), nil, int32(40)},
	"cgroupRoot": {"cgroupRoot: /kubepods-root", "--cgroup-root=/berth",
		func(c *KubeletConfiguration) any { return c.CgroupRoot }, "/kubepods-root", "/berth", "/"},
	"cgroupsPerQOS": {"cgroupsPerQOS: false", "--cgroups-per-qos",
		func(c *KubeletConfiguration) any { return deref(c.CgroupsPerQOS) }, false, true, true},
	"cgroupDriver": {"cgroupDriver: systemd", "--cgroup-driver=cgroupfs",
		func(c *KubeletConfiguration) any { return c.CgroupDriver }, "systemd", "cgroupfs", "cgroupfs"},
	"maxPods": {"maxPods: 20", "--max-pods=50",
		func(c *KubeletConfiguration) any { return c.MaxPods }, int32(20), int32(50), int32(110)},
	"resolvConf": {"resolvConf: /run/systemd/resolve/resolv.conf", "--resolv-conf=/etc/alt-resolv.conf",
		func(c *KubeletConfiguration) any { return deref(c.ResolverConfig) }, "/run/systemd/resolve/resolv.conf", "/etc/alt-resolv.conf", "/etc/resolv.conf"},
	"cpuCFSQuota": {"cpuCFSQuota: false", "--cpu-cfs-quota=true",
		func(c *KubeletConfiguration) any { return deref(c.CPUCFSQuota) }, false, true, nil},
	"cpuCFSQuotaPeriod": {"cpuCFSQuotaPeriod: 50ms", "--cpu-cfs-quota-period=20ms",
		func(c *KubeletConfiguration) any {
			if c.CPUCFSQuotaPeriod == nil {
				return nil
			}
			return c.CPUCFSQuotaPeriod.Duration
		}, 50 * time.Millisecond, 20 * time.Millisecond, nil},
	"contentType": {"contentType: application/json", "--kube-api-content-type=application/yaml",
		func(c *KubeletConfiguration) any { return c.ContentType }, "application/json", "application/yaml", "application/vnd.kubernetes.protobuf"},
	"kubeAPIQPS": {"kubeAPIQPS: 15", "--kube-api-qps=25",
		func(c *KubeletConfiguration) any { return deref(c.KubeAPIQPS) }, int32(15), int32(25), int32(50)},
	"kubeAPIBurst": {"kubeAPIBurst: 30", "--kube-api-burst=40",
		func(c *KubeletConfiguration) any { return c.KubeAPIBurst }, int32(30), int32(40), int32(100)},
	"evictionHard": {"evictionHard:\n  memory.available: 1Gi", "--eviction-hard=memory.available<2Gi,nodefs.available<5%",
		func(c *KubeletConfiguration) any { return c.EvictionHard }, map[string]string{"memory.available": "1Gi"},
		map[string]string{"memory.available": "2Gi", "nodefs.available": "5%"}, defaultEvictionHard},
	"containerLogMaxSize": {"containerLogMaxSize: 50Mi", "--container-log-max-size=5Mi",
		func(c *KubeletConfiguration) any { return c.ContainerLogMaxSize }, "50Mi", "5Mi", "10Mi"},
	"containerLogMaxFiles": {"containerLogMaxFiles: 3", "--container-log-max-files=4",
		func(c *KubeletConfiguration) any { return deref(c.ContainerLogMaxFiles) }, int32(3), int32(4), int32(5)},
	"containerLogMonitorInterval": {"containerLogMonitorInterval: 30s", "",
		func(c *KubeletConfiguration) any { return c.ContainerLogMonitorInterval.Duration }, 30 * time.Second, nil, 10 * time.Second},
	"systemReserved": {"systemReserved:\n  memory: 1Gi", "--system-reserved=cpu=500m,memory=2Gi",
		func(c *KubeletConfiguration) any { return c.SystemReserved }, map[string]string{"memory": "1Gi"},
		map[string]string{"cpu": "500m", "memory": "2Gi"}, map[string]string(nil)},
	"kubeReserved": {"kubeReserved:\n  cpu: 100m", "--kube-reserved=cpu=200m",
		func(c *KubeletConfiguration) any { return c.KubeReserved }, map[string]string{"cpu": "100m"},
		map[string]string{"cpu": "200m"}, map[string]string(nil)},
	"shutdownGracePeriod": {"shutdownGracePeriod: 30s", "",
		func(c *KubeletConfiguration) any { return c.ShutdownGracePeriod.Duration }, 30 * time.Second, nil, time.Duration(0)},
	"shutdownGracePeriodCriticalPods": {"shutdownGracePeriodCriticalPods: 10s", "",
		func(c *KubeletConfiguration) any { return c.ShutdownGracePeriodCriticalPods.Duration }, 10 * time.Second, nil, time.Duration(0)},
	"enableProfilingHandler": {"enableProfilingHandler: false", "",
		func(c *KubeletConfiguration) any { return deref(c.EnableProfilingHandler) }, false, nil, nil},
	"registerWithTaints": {"registerWithTaints:\n- key: dedicated\n  value: infra\n  effect: NoSchedule", "--register-with-taints=gpu:NoExecute",
		func(c *KubeletConfiguration) any { return c.RegisterWithTaints },
		[]v1.Taint{{Key: "dedicated", Value: "infra", Effect: v1.TaintEffectNoSchedule}},
		[]v1.Taint{{Key: "gpu", Effect: v1.TaintEffectNoExecute}}, []v1.Taint(nil)},
}

// compose runs Compose on a file holding doc, with args as the flags.
func compose(t *testing.T, doc string, args []string, fb Fallbacks) (*KubeletConfiguration, []Conflict) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	flags, warnings, err := ParseFlags(args)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("ParseFlags(%q): %v %v", args, err, warnings)
	}
	cfg, conflicts, err := Compose(path, flags, fb)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, conflicts
}

// TestComposeEveryField checks every field berth reads from every source:
// the file alone, the flag alone, both (the flag wins, and the conflict is
// reported), neither (the default). A flag not given never overrides the
// file.
func TestComposeEveryField(t *testing.T) {
	flagged := map[string]bool{}
	for path, fc := range fieldCases {
		if fc.flag != "" {
			name, _, _ := strings.Cut(strings.TrimPrefix(fc.flag, "--"), "=")
			flagged[name] = true
			if got := strings.Join(fieldFlags[name].path, "."); got != path {
				t.Errorf("flag --%s sets %q, the case says %q", name, got, path)
			}
		}
		if reflect.DeepEqual(fc.fromFile, fc.byDefault) || (fc.flag != "" && reflect.DeepEqual(fc.fromFlag, fc.fromFile)) {
			t.Errorf("%s: the sources' values must differ, or the case proves nothing", path)
		}
	}
	for name := range fieldFlags {
		if !flagged[name] {
			t.Errorf("flag --%s has no case in fieldCases", name)
		}
	}
	for path, fc := range fieldCases {
		t.Run(path, func(t *testing.T) {
			check := func(source string, cfg *KubeletConfiguration, want any) {
				t.Helper()
				if diff := cmp.Diff(want, fc.get(cfg)); diff != "" {
					t.Errorf("%s: (-want +got):\n%s", source, diff)
				}
			}
			cfg, conflicts := compose(t, header+fc.file+"\n", nil, Fallbacks{})
			check("file only", cfg, fc.fromFile)
			if len(conflicts) > 0 {
				t.Errorf("file only: conflicts %v", conflicts)
			}
			cfg, _ = compose(t, header, nil, Fallbacks{})
			check("neither", cfg, fc.byDefault)
			if fc.flag == "" {
				return
			}
			cfg, conflicts = compose(t, header, []string{fc.flag}, Fallbacks{})
			check("flag only", cfg, fc.fromFlag)
			if len(conflicts) > 0 {
				t.Errorf("flag only: conflicts %v", conflicts)
			}
			cfg, conflicts = compose(t, header+fc.file+"\n", []string{fc.flag}, Fallbacks{})
			check("file and flag", cfg, fc.fromFlag)
			if len(conflicts) != 1 || conflicts[0].Field != path || !strings.Contains(conflicts[0].UsedFrom, fc.flag[:strings.IndexAny(fc.flag+"=", "=")]) {
				t.Errorf("file and flag: conflicts %v, want one for %s won by %s", conflicts, path, fc.flag)
			}
		})
	}
}

// TestComposeFlagAgreesWithFile checks that a flag that gives the file's
// value, spelled otherwise, is no conflict.
func TestComposeFlagAgreesWithFile(t *testing.T) {
	_, conflicts := compose(t, header+"syncFrequency: 1m\nmaxPods: 20\n", []string{"--sync-frequency=60s", "--max-pods=20"}, Fallbacks{})
	if len(conflicts) > 0 {
		t.Errorf("conflicts %v, want none", conflicts)
	}
}

// TestComposeRuntimeEndpointFallback checks where berth's own
// containerRuntimeEndpoint stands: below the kubelet's file and flags,
// above the default.
func TestComposeRuntimeEndpointFallback(t *testing.T) {
	const (
		berth = "unix:///run/berth-config.sock"
		file  = "unix:///run/alt/containerd.sock"
		flag  = "unix:///run/flag.sock"
	)
	tests := []struct {
		name         string
		doc          string
		args         []string
		fallback     string
		want         string
		conflictFrom string
	}{
		{name: "kubelet file only (kubeadm 1.27+)", doc: header + "containerRuntimeEndpoint: " + file + "\n", want: file},
		{name: "berth config only", doc: header, fallback: berth, want: berth},
		{name: "neither", doc: header, want: "unix:///run/containerd/containerd.sock"},
		{name: "berth config and file", doc: header + "containerRuntimeEndpoint: " + file + "\n", fallback: berth, want: file, conflictFrom: SourceFile},
		{name: "berth config and flag", doc: header, args: []string{"--container-runtime-endpoint=" + flag}, fallback: berth, want: flag, conflictFrom: SourceFlag},
		{name: "berth config agrees with file", doc: header + "containerRuntimeEndpoint: " + file + "\n", fallback: file, want: file},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, conflicts := compose(t, tt.doc, tt.args, Fallbacks{ContainerRuntimeEndpoint: tt.fallback})
			if cfg.ContainerRuntimeEndpoint != tt.want {
				t.Errorf("containerRuntimeEndpoint %q, want %q", cfg.ContainerRuntimeEndpoint, tt.want)
			}
			switch {
			case tt.conflictFrom == "" && len(conflicts) > 0:
				t.Errorf("conflicts %v, want none", conflicts)
			case tt.conflictFrom != "" && (len(conflicts) != 1 || !strings.HasPrefix(conflicts[0].UsedFrom, tt.conflictFrom) ||
				conflicts[0].Ignored != berth || conflicts[0].IgnoredFrom != SourceFallback+" kubelet.containerRuntimeEndpoint"):
				t.Errorf("conflicts %v, want berth's %s overridden by the %s", conflicts, berth, tt.conflictFrom)
			}
		})
	}
}

func TestComposeErrors(t *testing.T) {
	if _, _, err := Compose(filepath.Join(t.TempDir(), "missing.yaml"), Flags{}, Fallbacks{}); err == nil {
		t.Error("missing file: no error")
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(header+"maxPod: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Compose(path, Flags{}, Fallbacks{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("unknown field: %v, want an error naming the file", err)
	}
}
