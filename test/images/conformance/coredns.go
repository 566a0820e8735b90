package conformance

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// DNSConfig describes the cluster DNS that CoreDNSManifest deploys.
type DNSConfig struct {
	// ClusterIP is the kube-dns Service's address: the kubelets'
	// clusterDNS (the test bed's is 10.96.0.10). Required.
	ClusterIP string
	// Domain is the cluster domain; empty means "cluster.local".
	Domain string
	// Replicas is the Deployment's replica count; 0 means 1.
	Replicas int32
	// Upstreams are the resolvers that names outside the cluster are
	// forwarded to. Empty means none: such names get NXDOMAIN, so that the
	// cluster never sends a query anywhere else (the test bed's rule).
	Upstreams []string
}

// Validate reports a configuration CoreDNSManifest cannot render.
func (c DNSConfig) Validate() error {
	if _, err := netip.ParseAddr(c.ClusterIP); err != nil {
		return fmt.Errorf("dns config: ClusterIP %q: %w", c.ClusterIP, err)
	}
	if c.Replicas < 0 {
		return fmt.Errorf("dns config: Replicas %d is negative", c.Replicas)
	}
	if strings.ContainsAny(c.Domain, " {}\n") {
		return fmt.Errorf("dns config: Domain %q is not a domain name", c.Domain)
	}
	for _, u := range c.Upstreams {
		if _, err := netip.ParseAddr(u); err != nil {
			if _, err := netip.ParseAddrPort(u); err != nil {
				return fmt.Errorf("dns config: upstream %q is not an address or address:port", u)
			}
		}
	}
	return nil
}

func (c DNSConfig) withDefaults() DNSConfig {
	if c.Domain == "" {
		c.Domain = "cluster.local"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

// The names kubeadm gives the add-on's objects: the e2e DNS tests find the
// pods by the k8s-app=kube-dns label and the Service by its name.
const (
	dnsNamespace   = metav1.NamespaceSystem
	dnsName        = "coredns"
	dnsServiceName = "kube-dns"
	dnsRoleName    = "system:coredns"
)

var dnsLabels = map[string]string{"k8s-app": "kube-dns"}

// Corefile is the CoreDNS configuration for cfg: kubeadm's plugins for the
// cluster zones (without its fallthrough, which would lead nowhere here),
// and a catch-all block that forwards to cfg.Upstreams or, without any,
// answers NXDOMAIN.
func Corefile(cfg DNSConfig) string {
	cfg = cfg.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, `%[1]s:53 in-addr.arpa:53 ip6.arpa:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes %[1]s in-addr.arpa ip6.arpa {
       pods insecure
       ttl 30
    }
    prometheus :9153
    cache 30 {
       disable success %[1]s
       disable denial %[1]s
    }
    loop
    reload
    loadbalance
}
.:53 {
    errors
`, cfg.Domain)
	if len(cfg.Upstreams) > 0 {
		fmt.Fprintf(&b, "    forward . %s\n    cache 30\n    loop\n", strings.Join(cfg.Upstreams, " "))
	} else {
		b.WriteString("    template ANY ANY {\n       rcode NXDOMAIN\n    }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// CoreDNSObjects are the add-on's objects, in the order to create them:
// ServiceAccount, ClusterRole and ClusterRoleBinding system:coredns,
// ConfigMap coredns (the Corefile), Deployment coredns and Service kube-dns
// at cfg.ClusterIP, as kubeadm names them.
func CoreDNSObjects(cfg DNSConfig) ([]runtime.Object, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	meta := func(name string, labels map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: dnsNamespace, Labels: labels}
	}
	return []runtime.Object{
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: meta(dnsName, nil),
		},
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: dnsRoleName},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
				{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
			},
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: dnsRoleName},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: dnsRoleName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: dnsName, Namespace: dnsNamespace}},
		},
		&corev1.ConfigMap{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: meta(dnsName, nil),
			Data:       map[string]string{"Corefile": Corefile(cfg)},
		},
		dnsDeployment(cfg),
		&corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta(dnsServiceName, map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}),
			Spec: corev1.ServiceSpec{
				Selector:  dnsLabels,
				ClusterIP: cfg.ClusterIP,
				Ports: []corev1.ServicePort{
					{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
					{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
					{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9153)},
				},
			},
		},
	}, nil
}

// dnsDeployment runs CoreDNS as kubeadm does: probes on health's :8080 and
// ready's :8181, root dropped to NET_BIND_SERVICE, read-only root, the
// node's resolv.conf (dnsPolicy Default), tolerating the control plane.
func dnsDeployment(cfg DNSConfig) *appsv1.Deployment {
	no := false
	yes := true
	probe := func(path string, port int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(port), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds:    2,
			TimeoutSeconds:   1,
			FailureThreshold: 5,
		}
	}
	liveness := probe("/health", 8080)
	liveness.InitialDelaySeconds = 60
	liveness.PeriodSeconds = 10
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: dnsName, Namespace: dnsNamespace, Labels: dnsLabels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &cfg.Replicas,
			Selector: &metav1.LabelSelector{MatchLabels: dnsLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: dnsLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName: dnsName,
					PriorityClassName:  "system-cluster-critical",
					DNSPolicy:          corev1.DNSDefault,
					NodeSelector:       map[string]string{"kubernetes.io/os": "linux"},
					Tolerations: []corev1.Toleration{
						{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
						{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
					},
					Containers: []corev1.Container{{
						Name:            dnsName,
						Image:           CoreDNSRef,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            []string{"-conf", "/etc/coredns/Corefile"},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("70Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("170Mi")},
						},
						VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: "/etc/coredns", ReadOnly: true}},
						Ports: []corev1.ContainerPort{
							{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
							{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: 9153, Protocol: corev1.ProtocolTCP},
						},
						LivenessProbe:  liveness,
						ReadinessProbe: probe("/ready", 8181),
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: &no,
							ReadOnlyRootFilesystem:   &yes,
							Capabilities: &corev1.Capabilities{
								Add:  []corev1.Capability{"NET_BIND_SERVICE"},
								Drop: []corev1.Capability{"ALL"},
							},
						},
					}},
					Volumes: []corev1.Volume{{
						Name: "config-volume",
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: dnsName},
							Items:                []corev1.KeyToPath{{Key: "Corefile", Path: "Corefile"}},
						}},
					}},
				},
			},
		},
	}
}

// CoreDNSManifest is CoreDNSObjects as one multi-document YAML stream, for
// `kubectl apply -f -`.
func CoreDNSManifest(cfg DNSConfig) ([]byte, error) {
	objs, err := CoreDNSObjects(cfg)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for i, obj := range objs {
		data, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("coredns manifest: %w", err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(data)
	}
	return b.Bytes(), nil
}
