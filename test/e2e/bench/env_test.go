package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/images"
	"github.com/berthnode/berth/test/testbed"
)

// benchEnv is what a benchmark works with on one agent's node: a client
// that is not rate limited, the node's CRI, and a namespace of its own
// whose pods a tracker follows.
type benchEnv struct {
	agent  agent
	client kubernetes.Interface
	cri    *cri.Client
	ns     string
	pods   *podTracker
}

// newBenchEnv readies ag's node for a benchmark; cleanups remove the
// namespace's pods, the namespace and the floor's pods.
func newBenchEnv(b *testing.B, ag agent, ns string) *benchEnv {
	b.Helper()
	testbed.Require(b, bed)
	client, err := bed.UnthrottledAdminClient()
	if err != nil {
		b.Fatal(err)
	}
	rt, err := cri.Dial(ag.node.CRIEndpoint)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close() })
	// The tracker outlives b.Context(), which ends before the cleanups
	// that wait for the pods to go; cleanups run last-registered first.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	b.Cleanup(stopWatch)
	env := &benchEnv{agent: ag, client: client, cri: rt, ns: ns, pods: newPodTracker()}
	ctx := b.Context()
	if err := env.waitNodeReady(ctx); err != nil {
		b.Fatal(err)
	}
	if err := env.createNamespace(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx := context.Background()
		if _, err := env.deleteAll(ctx); err != nil {
			b.Errorf("cleanup: %v", err)
		}
		_ = client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		if err := env.removeFloor(ctx); err != nil {
			b.Errorf("cleanup: %v", err)
		}
	})
	if err := env.pods.start(watchCtx, client, ns); err != nil {
		b.Fatal(err)
	}
	return env
}

// newAgentEnvs readies berth's node and kubelet's for a benchmark, in
// that order, with namespaces prefix-berth and prefix-kubelet.
func newAgentEnvs(b *testing.B, prefix string) []*benchEnv {
	return []*benchEnv{newBenchEnv(b, berthAgent, prefix+"-berth"), newBenchEnv(b, upstreamAgent, prefix+"-kubelet")}
}

// waitNodeReady waits until the agent reports the node Ready.
func (e *benchEnv) waitNodeReady(ctx context.Context) error {
	deadline := time.Now().Add(3 * time.Minute)
	for attempt := 0; ; attempt++ {
		n, err := e.client.CoreV1().Nodes().Get(ctx, e.agent.node.Name, metav1.GetOptions{})
		if err == nil && nodeReady(n) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not Ready within 3m (error %v)", e.agent.node.Name, err)
		}
		cluster.Pause(ctx, attempt)
	}
}

func nodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// createNamespace creates the benchmark's namespace and waits for its
// default service account, without which pods are refused.
func (e *benchEnv) createNamespace(ctx context.Context) error {
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}
	if _, err := e.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", e.ns, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		_, err := e.client.CoreV1().ServiceAccounts(e.ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no default service account in %s: %w", e.ns, err)
		}
		cluster.Pause(ctx, attempt)
	}
}

// busyboxPod is a pod of one busybox container running script on node.
func busyboxPod(name, node string, script string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PodSpec{
			NodeName:                      node,
			RestartPolicy:                 v1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []v1.Container{{Name: "main", Image: images.BusyboxRef, Command: []string{"sh", "-c", script}}},
		},
	}
}

// createPods creates busybox pods that sleep on the node, workers at a
// time, recording when each Create call began.
func (e *benchEnv) createPods(ctx context.Context, names []string, workers int) error {
	return e.createPodsWith(ctx, names, workers, func(name string) *v1.Pod {
		return busyboxPod(name, e.agent.node.Name, "sleep 3600")
	})
}

// createPodsWith creates the pods newPod makes for names, workers at a
// time.
func (e *benchEnv) createPodsWith(ctx context.Context, names []string, workers int, newPod func(name string) *v1.Pod) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, name := range names {
		g.Go(func() error {
			pod := newPod(name)
			e.pods.created(name, time.Now())
			if _, err := e.client.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create pod %s: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// deleteAll deletes the namespace's pods and waits until they are gone
// from the API and their sandboxes from the runtime; it returns how long
// that took.
func (e *benchEnv) deleteAll(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	err := e.client.CoreV1().Pods(e.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("delete pods of %s: %w", e.ns, err)
	}
	if err := e.pods.waitGone(ctx); err != nil {
		return 0, err
	}
	filter := &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{kubeletNamespaceLabel: e.ns}}
	deadline := time.Now().Add(readyTimeout)
	for attempt := 0; ; attempt++ {
		resp, err := e.cri.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter})
		if err == nil && len(resp.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("sandboxes of %s still in the runtime %s after their pods went (error %v)", e.ns, readyTimeout, err)
		}
		cluster.Pause(ctx, attempt)
	}
	took := time.Since(start)
	e.pods.reset()
	return took, nil
}

// podsOnNode counts every pod bound to the node, ours or not.
func (e *benchEnv) podsOnNode(ctx context.Context) (int, error) {
	list, err := e.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + e.agent.node.Name})
	if err != nil {
		return 0, fmt.Errorf("list pods on %s: %w", e.agent.node.Name, err)
	}
	return len(list.Items), nil
}
