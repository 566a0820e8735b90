package service

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestServiceRoundRobin runs 3 echo pods behind a ClusterIP and NodePort
// Service. From a pod on node A, 30 new connections to the cluster IP are
// spread 10/10/10, over TCP and UDP; from node B's network namespace the
// node port answers; scaling the Deployment updates node A's rules within
// 2 s.
func TestServiceRoundRobin(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	ctx := t.Context()
	deployEcho(t, client, ns, 3)
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: v1.ServiceSpec{
			Type:     v1.ServiceTypeNodePort,
			Selector: map[string]string{"app": "echo"},
			Ports: []v1.ServicePort{
				{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "udp", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt32(9001)},
			},
		},
	}
	svc, err := client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ips := cluster.WaitEndpoints(t, client, ns, "echo", 3)
	nodeA, nodeB := bed.Nodes()[0], bed.Nodes()[1]
	// The EndpointSlice lists the pods before berth has programmed them:
	// round-robin is counted from when every endpoint is in the rules.
	waitRules(t, nodeA.Name, ips, 10*time.Second)

	for _, mode := range []struct{ name, target string }{
		{"tcp", "http://" + svc.Spec.ClusterIP + ":80/"},
		{"udp", svc.Spec.ClusterIP + ":53"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			verb := "get"
			if mode.name == "udp" {
				verb = "udp"
			}
			out := cluster.ClientPod{Name: "rr-" + mode.name, Node: nodeA.Name, Command: []string{"/echo", verb, mode.target, "--count", "30"}}.Run(t, bed, client, ns)
			counts := countAnswers(out)
			if len(counts) != 3 {
				t.Fatalf("answers from %d pods, want 3: %v\n%s", len(counts), counts, out)
			}
			for pod, n := range counts {
				if n != 10 {
					t.Errorf("%d of 30 connections went to %s, want 10 each (round-robin): %v", n, pod, counts)
				}
			}
		})
	}

	t.Run("explain", func(t *testing.T) {
		out, err := bed.Output(ctx, nodeA.Name, "berth", "rules", "explain", ns+"/echo")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range append([]string{svc.Spec.ClusterIP + ":80", "cluster IP", "node port", "in turn"}, ips...) {
			if !strings.Contains(string(out), want) {
				t.Errorf("berth rules explain %s/echo lacks %q:\n%s", ns, want, out)
			}
		}
	})

	t.Run("nodeport", func(t *testing.T) {
		port := svc.Spec.Ports[0].NodePort
		out := cluster.ClientPod{Name: "np", Node: nodeB.Name, HostNetwork: true, Command: []string{"/echo", "get", fmt.Sprintf("http://%s:%d/", nodeA.IP, port), "--count", "3"}}.Run(t, bed, client, ns)
		if n := len(countAnswers(out)); n == 0 {
			t.Errorf("node port %d on %s did not answer from %s:\n%s", port, nodeA.IP, nodeB.Name, out)
		}
	})

	t.Run("scale", func(t *testing.T) {
		if _, err := client.AppsV1().Deployments(ns).Patch(ctx, "echo", types.MergePatchType, []byte(`{"spec":{"replicas":4}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		ips := cluster.WaitEndpoints(t, client, ns, "echo", 4)
		seen := time.Now()
		waitRules(t, nodeA.Name, ips, 2*time.Second)
		t.Logf("rules on %s updated %s after the EndpointSlice", nodeA.Name, time.Since(seen).Round(time.Millisecond))
	})
}

// waitRules waits until node's nat rules send traffic to every address.
func waitRules(t *testing.T, node string, ips []string, timeout time.Duration) {
	t.Helper()
	cluster.Poll(t, timeout, "rules on "+node+" for every endpoint", func() (bool, string) {
		rules, err := bed.Output(t.Context(), node, "iptables-save", "-t", "nat")
		return err == nil && containsAll(string(rules), ips), fmt.Sprintf("want %v (err %v)", ips, err)
	})
}

// deployEcho runs n echo pods labelled app=echo, spread over the nodes.
func deployEcho(t *testing.T, client kubernetes.Interface, ns string, n int32) {
	t.Helper()
	labels := map[string]string{"app": "echo"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(n),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{
					Containers: []v1.Container{cluster.EchoContainer()},
					TopologySpreadConstraints: []v1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: v1.LabelHostname, WhenUnsatisfiable: v1.DoNotSchedule,
						LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
					}},
				},
			},
		},
	}
	if _, err := client.AppsV1().Deployments(ns).Create(t.Context(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// countAnswers counts the echo answers ("POD CLIENT") per pod.
func countAnswers(out string) map[string]int {
	counts := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "echo-") {
			counts[f[0]]++
		}
	}
	return counts
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
