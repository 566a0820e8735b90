package service

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestSessionAffinity checks that with ClientIP affinity every connection
// of one client reaches the same pod.
func TestSessionAffinity(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	deployEcho(t, client, ns, 3)
	svc := createService(t, client, ns, func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
	})
	ips := cluster.WaitEndpoints(t, client, ns, "echo", 3)
	node := bed.Nodes()[0].Name
	waitRules(t, node, ips, 10*time.Second)
	out := cluster.ClientPod{Name: "sticky", Node: node, Command: []string{"/echo", "get", "http://" + svc.Spec.ClusterIP + ":80/", "--count", "12"}}.Run(t, bed, client, ns)
	if counts := countAnswers(out); len(counts) != 1 {
		t.Errorf("with ClientIP affinity one client reached %d pods, want 1: %v", len(counts), counts)
	}
}

// TestExternalTrafficPolicyLocal checks that a NodePort service with
// externalTrafficPolicy Local answers only on a node with a local endpoint,
// and that the endpoint sees the client's own address.
func TestExternalTrafficPolicyLocal(t *testing.T) {
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	ns := cluster.Namespace(t, client)
	nodeA, nodeB := bed.Nodes()[0], bed.Nodes()[1]
	// One echo pod, on node A.
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "echo-local", Labels: map[string]string{"app": "echo"}},
		Spec:       v1.PodSpec{NodeName: nodeA.Name, Containers: []v1.Container{cluster.EchoContainer()}},
	}
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := createService(t, client, ns, func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeNodePort
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	})
	ips := cluster.WaitEndpoints(t, client, ns, "echo", 1)
	waitRules(t, nodeA.Name, ips, 10*time.Second)
	port := svc.Spec.Ports[0].NodePort
	// From node B's own namespace to node A's node port: the pod sees node
	// B's address, not node A's.
	out := cluster.ClientPod{Name: "from-b", Node: nodeB.Name, HostNetwork: true,
		Command: []string{"/echo", "get", fmt.Sprintf("http://%s:%d/", nodeA.IP, port)}}.Run(t, bed, client, ns)
	if !strings.Contains(out, "echo-local "+nodeB.IP+":") {
		t.Errorf("answer %q: want echo-local seeing the client address %s (no masquerade)", out, nodeB.IP)
	}
}

// createService creates the service "echo" selecting app=echo on port 80
// (http) after mutate adjusts it.
func createService(t *testing.T, client kubernetes.Interface, ns string, mutate func(*v1.Service)) *v1.Service {
	t.Helper()
	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: v1.ServiceSpec{
			Selector: map[string]string{"app": "echo"},
			Ports:    []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	mutate(svc)
	created, err := client.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created
}
