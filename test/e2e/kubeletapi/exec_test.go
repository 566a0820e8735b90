package kubeletapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestExec: kubectl exec returns the command's stdout, stderr and exit
// code, and passes stdin with -i.
func TestExec(t *testing.T) {
	_, ns := setUpWithPod(t, busybox("shell", "exec sleep 1000000"))
	r := kubectlWithInput(t, "", "exec", "-n", ns, "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.Stdout != "out\n" || !strings.Contains(r.Stderr, "err\n") || r.Code != 3 {
		t.Errorf("exec gave stdout %q, stderr %q, exit %d; want out, err, 3", r.Stdout, r.Stderr, r.Code)
	}
	in := "line one\nline two\n"
	if r := kubectlWithInput(t, in, "exec", "-i", "-n", ns, "shell", "--", "cat"); r.Stdout != in || r.Code != 0 {
		t.Errorf("exec -i cat gave %q (exit %d, stderr %q), want %q", r.Stdout, r.Code, r.Stderr, in)
	}
	if got := kubectl(t, "exec", "-n", ns, "shell", "--", "hostname"); got != "shell\n" {
		t.Errorf("exec hostname gave %q, want the pod's name", got)
	}
}

// TestAttach: kubectl attach -i talks to a running container's stdin and
// stdout.
func TestAttach(t *testing.T) {
	pod := busybox("attachee", "exec cat")
	pod.Spec.Containers[0].Stdin = true
	pod.Spec.Containers[0].StdinOnce = true
	_, ns := setUpWithPod(t, pod)
	r := kubectlWithInput(t, "ping through attach\n", "attach", "-i", "-n", ns, "attachee", "-c", "c")
	if !strings.Contains(r.Stdout, "ping through attach\n") {
		t.Errorf("attach -i gave stdout %q (exit %d, stderr %q), want the echoed line", r.Stdout, r.Code, r.Stderr)
	}
}

// TestPortForward: kubectl port-forward to the echo pod answers HTTP
// requests through the forwarded port.
func TestPortForward(t *testing.T) {
	pod := busybox("web", "")
	pod.Spec.Containers = []v1.Container{cluster.EchoContainer()}
	_, ns := setUpWithPod(t, pod)
	lines := stream(t, "port-forward", "-n", ns, "pod/web", "18080:8080")
	deadline := time.Now().Add(30 * time.Second)
	for l := ""; !strings.HasPrefix(l, "Forwarding from 127.0.0.1:18080"); {
		l = next(t, lines, deadline, "kubectl port-forward")
	}
	// kubectl listens on the control-plane host's loopback: connect there.
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return bed.DialContext(ctx, testbed.ControlPlaneHost, network, addr)
		},
		DisableKeepAlives: true,
	}}
	for i := range 3 {
		resp, err := httpc.Get("http://127.0.0.1:18080/")
		if err != nil {
			t.Fatalf("request %d through the forwarded port: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "web") {
			t.Errorf("request %d: %d %q (%v), want 200 naming pod web", i, resp.StatusCode, body, err)
		}
	}
}
