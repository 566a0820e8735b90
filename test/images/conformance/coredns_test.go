package conformance

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestCoreDNSManifest(t *testing.T) {
	data, err := CoreDNSManifest(DNSConfig{ClusterIP: "10.96.0.10"})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	var svc corev1.Service
	var cm corev1.ConfigMap
	var deploy appsv1.Deployment
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("document %q: %v", doc, err)
		}
		kinds = append(kinds, u.GetKind()+"/"+u.GetName())
		var into any
		switch u.GetKind() {
		case "Service":
			into = &svc
		case "ConfigMap":
			into = &cm
		case "Deployment":
			into = &deploy
		default:
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
			t.Fatalf("%s: %v", u.GetKind(), err)
		}
	}
	wantKinds := []string{"ServiceAccount/coredns", "ClusterRole/system:coredns", "ClusterRoleBinding/system:coredns",
		"ConfigMap/coredns", "Deployment/coredns", "Service/kube-dns"}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	if svc.Namespace != "kube-system" || svc.Spec.ClusterIP != "10.96.0.10" || svc.Spec.Selector["k8s-app"] != "kube-dns" || len(svc.Spec.Ports) != 3 {
		t.Errorf("Service = %+v, want kube-system/kube-dns at 10.96.0.10 selecting k8s-app=kube-dns with dns, dns-tcp, metrics", svc)
	}
	c := deploy.Spec.Template.Spec.Containers
	if len(c) != 1 || c[0].Image != CoreDNSRef || *deploy.Spec.Replicas != 1 || deploy.Spec.Template.Labels["k8s-app"] != "kube-dns" {
		t.Errorf("Deployment = %+v, want one %s replica labelled k8s-app=kube-dns", deploy.Spec, CoreDNSRef)
	}
	corefile := cm.Data["Corefile"]
	for _, want := range []string{"kubernetes cluster.local in-addr.arpa ip6.arpa {", "rcode NXDOMAIN", "ready", "health {"} {
		if !strings.Contains(corefile, want) {
			t.Errorf("Corefile lacks %q:\n%s", want, corefile)
		}
	}
	if strings.Contains(corefile, "forward") {
		t.Errorf("Corefile forwards without upstreams:\n%s", corefile)
	}
}

func TestCorefileUpstreams(t *testing.T) {
	got := Corefile(DNSConfig{ClusterIP: "10.96.0.10", Domain: "bed.test", Upstreams: []string{"10.0.0.2", "10.0.0.3:5353"}})
	for _, want := range []string{"bed.test:53 in-addr.arpa:53 ip6.arpa:53 {", "kubernetes bed.test in-addr.arpa ip6.arpa {", "forward . 10.0.0.2 10.0.0.3:5353"} {
		if !strings.Contains(got, want) {
			t.Errorf("Corefile lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "NXDOMAIN") {
		t.Errorf("Corefile answers NXDOMAIN despite upstreams:\n%s", got)
	}
}

func TestDNSConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  DNSConfig
		ok   bool
	}{
		{"bed", DNSConfig{ClusterIP: "10.96.0.10"}, true},
		{"ipv6", DNSConfig{ClusterIP: "fd00::a", Replicas: 2}, true},
		{"no address", DNSConfig{}, false},
		{"name for address", DNSConfig{ClusterIP: "kube-dns"}, false},
		{"negative replicas", DNSConfig{ClusterIP: "10.96.0.10", Replicas: -1}, false},
		{"domain breaks the Corefile", DNSConfig{ClusterIP: "10.96.0.10", Domain: "a {"}, false},
		{"upstream by name", DNSConfig{ClusterIP: "10.96.0.10", Upstreams: []string{"dns.example"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if _, err := CoreDNSObjects(tc.cfg); (err == nil) != tc.ok {
				t.Errorf("CoreDNSObjects() error = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
