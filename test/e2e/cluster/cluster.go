package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// AdminClient returns a client with the bed's admin kubeconfig.
func AdminClient(t testing.TB, bed *testbed.Testbed) kubernetes.Interface {
	t.Helper()
	c, err := bed.Client(testbed.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Namespace creates a namespace named after the test, once its default
// service account exists (pods cannot be created before), and deletes it
// after the test.
func Namespace(t testing.TB, client kubernetes.Interface) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	Poll(t, 30*time.Second, "default service account in "+name, func() (bool, string) {
		_, err := client.CoreV1().ServiceAccounts(name).Get(t.Context(), "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	t.Cleanup(func() {
		_ = client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// Poll calls check until it reports done or timeout passes, backing off
// from 50 ms to 1 s; on timeout the test fails with what and check's last
// explanation.
func Poll(t testing.TB, timeout time.Duration, what string, check func() (done bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		done, last := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		Pause(t.Context(), attempt)
	}
}

// Pause waits a growing interval between polls, or until ctx ends.
func Pause(ctx context.Context, attempt int) {
	d := min(50*time.Millisecond<<min(attempt, 5), time.Second)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// WaitPod polls a pod until ok accepts it, and returns it.
func WaitPod(t testing.TB, client kubernetes.Interface, ns, name string, timeout time.Duration, ok func(*v1.Pod) bool) *v1.Pod {
	t.Helper()
	var last *v1.Pod
	Poll(t, timeout, "pod "+ns+"/"+name, func() (bool, string) {
		p, err := client.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		last = p
		return ok(p), Describe(p)
	})
	return last
}

// WaitPods polls until count pods match selector and ok accepts them all.
func WaitPods(t testing.TB, client kubernetes.Interface, ns, selector string, count int, timeout time.Duration, ok func(*v1.Pod) bool) []v1.Pod {
	t.Helper()
	var pods []v1.Pod
	Poll(t, timeout, fmt.Sprintf("%d pods %s in %s", count, selector, ns), func() (bool, string) {
		list, err := client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err.Error()
		}
		var states []string
		all := len(list.Items) == count
		for i := range list.Items {
			all = all && ok(&list.Items[i])
			states = append(states, Describe(&list.Items[i]))
		}
		pods = list.Items
		return all, strings.Join(states, "; ")
	})
	return pods
}

// PodReady tells whether a pod is Running and Ready.
func PodReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue && p.Status.Phase == v1.PodRunning
		}
	}
	return false
}

// Describe summarizes a pod's status for failure messages.
func Describe(p *v1.Pod) string {
	if p == nil {
		return "<none>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s: phase %s", p.Name, p.Spec.NodeName, p.Status.Phase)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
	}
	for _, cs := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, " [%s restarts=%d %+v]", cs.Name, cs.RestartCount, cs.State)
	}
	return b.String()
}

// WaitEndpoints waits until a service's EndpointSlices list n ready
// endpoints and returns their addresses.
func WaitEndpoints(t testing.TB, client kubernetes.Interface, ns, svc string, n int) []string {
	t.Helper()
	var ips []string
	Poll(t, 2*time.Minute, fmt.Sprintf("%d ready endpoints of %s/%s", n, ns, svc), func() (bool, string) {
		slices, err := client.DiscoveryV1().EndpointSlices(ns).List(t.Context(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
		if err != nil {
			return false, err.Error()
		}
		ips = nil
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if ptr.Deref(e.Conditions.Ready, false) {
					ips = append(ips, e.Addresses...)
				}
			}
		}
		return len(ips) == n, fmt.Sprint(ips)
	})
	return ips
}

// ClientPod describes a one-shot pod.
type ClientPod struct {
	// Name and Node place it.
	Name, Node string
	// HostNetwork runs it in the node's own network namespace.
	HostNetwork bool
	// Image defaults to the echo image.
	Image string
	// Command is what it runs.
	Command []string
}

// Run runs a one-shot pod to completion and returns its log; the test
// fails if the pod does not succeed.
func (c ClientPod) Run(t testing.TB, bed *testbed.Testbed, client kubernetes.Interface, ns string) string {
	t.Helper()
	image := c.Image
	if image == "" {
		image = images.EchoRef
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: c.Name},
		Spec: v1.PodSpec{
			NodeName:      c.Node,
			HostNetwork:   c.HostNetwork,
			RestartPolicy: v1.RestartPolicyNever,
			Containers:    []v1.Container{{Name: "client", Image: image, Command: c.Command}},
		},
	}
	created, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := WaitPod(t, client, ns, c.Name, time.Minute, func(p *v1.Pod) bool {
		return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
	})
	logPath, err := bed.HostPath(c.Node, filepath.Join("/var/log/pods", fmt.Sprintf("%s_%s_%s", ns, c.Name, created.UID), "client", "0.log"))
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("client pod log: %v", err)
	}
	out := criLogContent(string(log))
	if p.Status.Phase != v1.PodSucceeded {
		t.Errorf("client pod %s on %s ended %s; log:\n%s", c.Name, c.Node, p.Status.Phase, out)
	}
	return out
}

// criLogContent returns what a container wrote, from its CRI log file
// ("TIMESTAMP STREAM TAG CONTENT" lines; tag P marks a partial line).
func criLogContent(log string) string {
	var b strings.Builder
	for _, line := range strings.Split(log, "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 3 {
			continue
		}
		content := ""
		if len(f) == 4 {
			content = f[3]
		}
		b.WriteString(content)
		if f[2] != "P" {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// EchoContainer runs the echo server (HTTP 8080 named "http", TCP 9000,
// UDP 9001 named "udp"), which answers with its pod's name.
func EchoContainer() v1.Container {
	return v1.Container{
		Name:  "echo",
		Image: images.EchoRef,
		Env: []v1.EnvVar{{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{
			FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"},
		}}},
		Ports: []v1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "udp", ContainerPort: 9001, Protocol: v1.ProtocolUDP}},
	}
}
