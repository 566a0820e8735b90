package kubeletapi

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// nodeName is the bed's one node.
func nodeName() string { return bed.Nodes()[0].Name }

// setUp returns the admin client and a fresh namespace.
func setUp(t *testing.T) (kubernetes.Interface, string) {
	t.Helper()
	testbed.Require(t, bed)
	client := cluster.AdminClient(t, bed)
	return client, cluster.Namespace(t, client)
}

// busybox returns a pod of one busybox container named c running the shell
// script, on the bed's node.
func busybox(name, script string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			NodeName:                      nodeName(),
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []v1.Container{{
				Name: "c", Image: images.BusyboxRef, Command: []string{"sh", "-c", script},
			}},
		},
	}
}

// runPod creates the pod and waits until it runs (and is ready, if it has
// a readiness probe).
func runPod(t *testing.T, client kubernetes.Interface, ns string, pod *v1.Pod) *v1.Pod {
	t.Helper()
	if _, err := client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return cluster.WaitPod(t, client, ns, pod.Name, 2*time.Minute, cluster.PodReady)
}

// kubectl runs kubectl and returns its stdout; the test fails if it fails.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := bed.Kubectl(t.Context(), args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// kubectlWithInput runs kubectl with stdin and returns what it wrote and its
// exit code, within a minute.
func kubectlWithInput(t *testing.T, stdin string, args ...string) cluster.KubectlResult {
	t.Helper()
	return cluster.KubectlWithInput(t, bed, time.Minute, stdin, args...)
}

// stream starts kubectl and returns its stdout lines as they come; the
// channel closes when kubectl ends. kubectl is killed when the test ends.
func stream(t *testing.T, args ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := bed.KubectlCommand(ctx, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("kubectl %s stderr:\n%s", strings.Join(args, " "), stderr.String())
		}
	})
	return lines
}

// next returns the next line of a stream, failing the test at the deadline
// or when the stream ends.
func next(t *testing.T, lines <-chan string, deadline time.Time, what string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("%s: kubectl ended", what)
		}
		return l
	case <-time.After(time.Until(deadline)):
		t.Fatalf("%s: nothing by the deadline", what)
	}
	return ""
}
