package podruntime

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

func TestDNSConfig(t *testing.T) {
	cluster := clusterDNS{Servers: []string{"10.96.0.10"}, Domain: "cluster.local"}
	host := hostDNS{Servers: []string{"192.0.2.53"}, Searches: []string{"example.com"}, Options: []string{"edns0"}}
	clusterSearch := []string{"ns.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.com"}
	tests := []struct {
		name        string
		policy      v1.DNSPolicy
		hostNetwork bool
		podConfig   *v1.PodDNSConfig
		cluster     clusterDNS
		want        *runtimeapi.DNSConfig
		warning     string
	}{{
		name:    "ClusterFirst",
		policy:  v1.DNSClusterFirst,
		cluster: cluster,
		want:    &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: clusterSearch, Options: []string{"ndots:5"}},
	}, {
		name:    "empty policy is ClusterFirst",
		cluster: cluster,
		want:    &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: clusterSearch, Options: []string{"ndots:5"}},
	}, {
		name:        "ClusterFirst on the host network is Default",
		policy:      v1.DNSClusterFirst,
		hostNetwork: true,
		cluster:     cluster,
		want:        &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"example.com"}, Options: []string{"edns0"}},
	}, {
		name:        "ClusterFirstWithHostNet",
		policy:      v1.DNSClusterFirstWithHostNet,
		hostNetwork: true,
		cluster:     cluster,
		want:        &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: clusterSearch, Options: []string{"ndots:5"}},
	}, {
		name:    "ClusterFirst without cluster DNS falls back to Default",
		policy:  v1.DNSClusterFirst,
		want:    &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"example.com"}, Options: []string{"edns0"}},
		warning: "Falling back",
	}, {
		name:    "Default",
		policy:  v1.DNSDefault,
		cluster: cluster,
		want:    &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"example.com"}, Options: []string{"edns0"}},
	}, {
		name:    "None takes only the pod's config",
		policy:  v1.DNSNone,
		cluster: cluster,
		podConfig: &v1.PodDNSConfig{
			Nameservers: []string{"1.1.1.1"}, Searches: []string{"my.dns"},
			Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "rotate"}},
		},
		want: &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1"}, Searches: []string{"my.dns"}, Options: []string{"ndots:2", "rotate"}},
	}, {
		name:    "ClusterFirst merged with the pod's config",
		policy:  v1.DNSClusterFirst,
		cluster: cluster,
		podConfig: &v1.PodDNSConfig{
			Nameservers: []string{"10.96.0.10", "1.1.1.1"}, Searches: []string{"cluster.local", "extra.dns"},
			Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("1")}, {Name: "edns0"}},
		},
		want: &runtimeapi.DNSConfig{
			Servers:  []string{"10.96.0.10", "1.1.1.1"},
			Searches: append(append([]string(nil), clusterSearch...), "extra.dns"),
			Options:  []string{"ndots:1", "edns0"},
		},
	}, {
		name:      "more than three nameservers are dropped",
		policy:    v1.DNSNone,
		podConfig: &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"}},
		want:      &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1", "2.2.2.2", "3.3.3.3"}},
		warning:   "exceeds limits",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Spec: v1.PodSpec{
				DNSPolicy: tt.policy, HostNetwork: tt.hostNetwork, DNSConfig: tt.podConfig,
			}}
			got, warning := dnsConfig(pod, tt.cluster, host)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("DNS config (-want +got):\n%s", diff)
			}
			if (tt.warning == "") != (warning == "") || !strings.Contains(warning, tt.warning) {
				t.Errorf("warning %q, want one containing %q", warning, tt.warning)
			}
		})
	}
}

func TestParseResolvConf(t *testing.T) {
	in := "# comment\nnameserver 192.0.2.1\nnameserver 192.0.2.2 ; trailing\ndomain corp.\nsearch a.example b.example. .\noptions ndots:2 edns0\n"
	got, err := parseResolvConf(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := hostDNS{Servers: []string{"192.0.2.1", "192.0.2.2"}, Searches: []string{"a.example", "b.example"}, Options: []string{"ndots:2", "edns0"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got, _ = parseResolvConf(strings.NewReader("domain corp.example\n"))
	if diff := cmp.Diff([]string{"corp.example"}, got.Searches); diff != "" {
		t.Errorf("domain as search (-want +got):\n%s", diff)
	}
}

func resources(req, lim string) v1.ResourceRequirements {
	r := v1.ResourceRequirements{}
	if req != "" {
		r.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse(req), v1.ResourceMemory: resource.MustParse("64Mi")}
	}
	if lim != "" {
		r.Limits = v1.ResourceList{v1.ResourceCPU: resource.MustParse(lim), v1.ResourceMemory: resource.MustParse("64Mi")}
	}
	return r
}

func TestQOSAndCgroupParent(t *testing.T) {
	tests := []struct {
		name              string
		res               v1.ResourceRequirements
		qos               v1.PodQOSClass
		cgroupfs, systemd string
	}{{
		name:     "best effort",
		qos:      v1.PodQOSBestEffort,
		cgroupfs: "/kubepods/besteffort/pod12-34",
		systemd:  "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12_34.slice",
	}, {
		name:     "burstable",
		res:      resources("100m", ""),
		qos:      v1.PodQOSBurstable,
		cgroupfs: "/kubepods/burstable/pod12-34",
		systemd:  "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice",
	}, {
		name:     "guaranteed",
		res:      resources("", "500m"),
		qos:      v1.PodQOSGuaranteed,
		cgroupfs: "/kubepods/pod12-34",
		systemd:  "/kubepods.slice/kubepods-pod12_34.slice",
	}, {
		name:     "requests below limits",
		res:      resources("100m", "500m"),
		qos:      v1.PodQOSBurstable,
		cgroupfs: "/kubepods/burstable/pod12-34",
		systemd:  "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12_34.slice",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "12-34"}, Spec: v1.PodSpec{
				Containers: []v1.Container{{Name: "a", Resources: tt.res}},
			}}
			if got := computeQOS(pod); got != tt.qos {
				t.Errorf("QoS %s, want %s", got, tt.qos)
			}
			if got := CgroupParent("/", "cgroupfs", true, pod); got != tt.cgroupfs {
				t.Errorf("cgroupfs parent %q, want %q", got, tt.cgroupfs)
			}
			if got := CgroupParent("/", "systemd", true, pod); got != tt.systemd {
				t.Errorf("systemd parent %q, want %q", got, tt.systemd)
			}
		})
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u"}}
	if got := CgroupParent("/custom", "cgroupfs", true, pod); got != "/custom/kubepods/besteffort/podu" {
		t.Errorf("custom root: %q", got)
	}
	if got := CgroupParent("/custom", "cgroupfs", false, pod); got != "/custom" {
		t.Errorf("without QoS cgroups: %q", got)
	}
}

func TestPodHostname(t *testing.T) {
	long := strings.Repeat("a", 62) + "-b"
	tests := []struct {
		name                string
		pod                 *v1.Pod
		hostname, fqdn, err string
	}{{
		name:     "pod name",
		pod:      &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns"}},
		hostname: "web-0",
	}, {
		name:     "hostname and subdomain",
		pod:      &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: v1.PodSpec{Hostname: "h", Subdomain: "sub"}},
		hostname: "h",
		fqdn:     "h.sub.ns.svc.cluster.local",
	}, {
		name: "hostname as FQDN",
		pod: &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: v1.PodSpec{
			Hostname: "h", Subdomain: "sub", SetHostnameAsFQDN: ptr.To(true),
		}},
		hostname: "h.sub.ns.svc.cluster.local",
		fqdn:     "h.sub.ns.svc.cluster.local",
	}, {
		name:     "long name truncated without a trailing dash",
		pod:      &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: long, Namespace: "ns"}},
		hostname: strings.Repeat("a", 62),
	}, {
		name: "FQDN too long",
		pod: &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: v1.PodSpec{
			Hostname: strings.Repeat("h", 50), Subdomain: "sub", SetHostnameAsFQDN: ptr.To(true),
		}},
		err: "too long",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, f, err := podHostname(tt.pod, "cluster.local")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || h != tt.hostname || f != tt.fqdn {
				t.Errorf("got (%q, %q, %v), want (%q, %q)", h, f, err, tt.hostname, tt.fqdn)
			}
		})
	}
}

func TestSandboxConfig(t *testing.T) {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{"note": "x"}},
		Spec: v1.PodSpec{
			HostPID: true,
			SecurityContext: &v1.PodSecurityContext{
				RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](2000), FSGroup: ptr.To[int64](3000),
				SupplementalGroups: []int64{4000}, Sysctls: []v1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}},
				SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []v1.Container{{Name: "a", Ports: []v1.ContainerPort{
				{ContainerPort: 80, HostPort: 8080}, {ContainerPort: 53, HostPort: 5353, Protocol: v1.ProtocolUDP, HostIP: "127.0.0.1"},
				{ContainerPort: 9090},
			}}},
		},
	}
	got, err := SandboxConfig(pod, 2, SandboxParams{RootDir: "/var/lib/kubelet", LogsDir: "/var/log/pods", CgroupRoot: "/",
		CgroupDriver: "cgroupfs", CgroupsPerQOS: true, ClusterDomain: "cluster.local", DNS: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "ns", Uid: "u1", Attempt: 2},
		Hostname:     "web",
		LogDirectory: "/var/log/pods/ns_web_u1",
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}},
		PortMappings: []*runtimeapi.PortMapping{
			{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080},
			{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostPort: 5353, HostIp: "127.0.0.1"},
		},
		Labels:      map[string]string{"app": "web", labelPodName: "web", labelPodNamespace: "ns", labelPodUID: "u1"},
		Annotations: map[string]string{"note": "x"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/besteffort/podu1",
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_POD,
				},
				RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 2000},
				SupplementalGroups: []int64{4000, 3000},
				Seccomp:            &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
			Sysctls: map[string]string{"net.core.somaxconn": "1024"},
		},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("sandbox config (-want +got):\n%s", diff)
	}
	pod.Spec.HostNetwork = true
	got, _ = SandboxConfig(pod, 0, SandboxParams{CgroupDriver: "cgroupfs"})
	if got.Hostname != "" || got.Linux.SecurityContext.NamespaceOptions.Network != runtimeapi.NamespaceMode_NODE {
		t.Errorf("host network sandbox: hostname %q, network %v", got.Hostname, got.Linux.SecurityContext.NamespaceOptions.Network)
	}
}
