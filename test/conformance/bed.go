package conformance

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/berthnode/berth/test/testbed"
	"github.com/berthnode/berth/test/testbed/upstream"
)

// The node agents a run can test.
const (
	// AgentBerth joins every node with berth as its kubelet and proxy.
	AgentBerth = "berth"
	// AgentUpstream joins every node with the upstream kubelet and runs the
	// upstream kube-proxy next to it: the reference on the same bed.
	AgentUpstream = "upstream"
)

// bedName names the bed a conformance run brings up: one of its own per
// process, so that runs side by side (and other beds) never take each
// other's down; the bed is owned, so a crashed run's is swept by the next Up.
func bedName() string { return fmt.Sprintf("conf%d", os.Getpid()) }

// BedConfig says what bed to bring up for a run.
type BedConfig struct {
	// Agent is AgentBerth or AgentUpstream.
	Agent string
	// Nodes is the number of nodes.
	Nodes int
	// Images are docker-archive tarballs imported into every node's
	// containerd: the images the suite's pods use.
	Images []string
	// CoreDNSManifest is the CoreDNS add-on, with its Service at the
	// kubelet configuration's clusterDNS address.
	CoreDNSManifest string
	// BinDir holds kubelet and kube-proxy, for AgentUpstream.
	BinDir string
}

// Validate reports every problem of c at once.
func (c *BedConfig) Validate() error {
	var errs []string
	if c.Agent != AgentBerth && c.Agent != AgentUpstream {
		errs = append(errs, fmt.Sprintf("agent %q: want %s or %s", c.Agent, AgentBerth, AgentUpstream))
	}
	if c.Nodes < 1 {
		errs = append(errs, fmt.Sprintf("nodes %d: want at least 1", c.Nodes))
	}
	files := append([]string{c.CoreDNSManifest}, c.Images...)
	if c.Agent == AgentUpstream {
		files = append(files, filepath.Join(c.BinDir, "kubelet"), filepath.Join(c.BinDir, "kube-proxy"))
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("conformance bed: %s", strings.Join(errs, "; "))
	}
	return nil
}

// bedTimeout bounds bringing the bed up, joining and CoreDNS.
const bedTimeout = 15 * time.Minute

// UpBed brings up a bed as c says, joins its nodes, routes the pod
// network to the control plane and the LAN host, and deploys CoreDNS. On an
// error after the bed began to exist it returns the bed too: Down removes it.
func UpBed(ctx context.Context, c BedConfig, out io.Writer) (*testbed.Testbed, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, bedTimeout)
	defer cancel()
	name := bedName()
	cfg, err := testbed.DefaultConfig(ctx, name, c.Nodes)
	if err != nil {
		return nil, err
	}
	cfg.Images = append(cfg.Images, c.Images...)
	cfg.Owned = true
	start := time.Now()
	fmt.Fprintf(out, "bringing up test bed %q (%d node(s), %d images per node)\n", name, c.Nodes, len(cfg.Images))
	tb, err := testbed.Up(ctx, cfg)
	if err != nil {
		return tb, err
	}
	if c.Agent == AgentUpstream {
		err = upstream.Join(ctx, tb, c.BinDir, out)
	} else {
		err = tb.JoinNodes(ctx, out)
	}
	if err != nil {
		return tb, err
	}
	client, err := tb.Client(testbed.AdminKubeconfig)
	if err != nil {
		return tb, err
	}
	nodes, err := waitNodesReady(ctx, client, c.Nodes)
	if err != nil {
		return tb, err
	}
	if err := routePodNetwork(ctx, tb, nodes, c.Agent == AgentUpstream); err != nil {
		return tb, err
	}
	dns, err := clusterDNS(tb, nodes[0].Name)
	if err != nil {
		return tb, err
	}
	if err := deployCoreDNS(ctx, tb, client, c.CoreDNSManifest, dns, out); err != nil {
		return tb, err
	}
	fmt.Fprintf(out, "test bed ready in %s (agent %s)\n", time.Since(start).Round(time.Second), c.Agent)
	return tb, nil
}

// waitNodesReady waits until n Nodes are Ready and have a pod CIDR, and
// returns them.
func waitNodesReady(ctx context.Context, client testbed.Interface, n int) ([]v1.Node, error) {
	var nodes []v1.Node
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		nodes = nodes[:0]
		for _, node := range list.Items {
			if nodeReady(&node) && node.Spec.PodCIDR != "" {
				nodes = append(nodes, node)
			}
		}
		last = fmt.Sprintf("%d of %d nodes Ready with a pod CIDR", len(nodes), n)
		return len(nodes) == n, nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for nodes: %s: %w", last, err)
	}
	return nodes, nil
}

// nodeReady tells whether the Node's Ready condition is True.
func nodeReady(n *v1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == v1.NodeReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// routePodNetwork adds a route to each node's pod CIDR via the node on the
// control plane's host (the apiserver answers pods that reach it through the
// kubernetes Service, and calls webhooks in pods) and on the LAN host (the
// suite reaches pods directly), as a host-gateway network add-on does on
// every machine of a cluster. With betweenNodes, nodes get the routes to
// each other's pod CIDRs too: berth's pod network adds those itself.
func routePodNetwork(ctx context.Context, tb *testbed.Testbed, nodes []v1.Node, betweenNodes bool) error {
	hosts := []string{testbed.ControlPlaneHost, testbed.LANHost}
	if betweenNodes {
		for _, n := range nodes {
			hosts = append(hosts, n.Name)
		}
	}
	for _, h := range hosts {
		for _, n := range nodes {
			if n.Name == h {
				continue
			}
			ip := internalIP(&n)
			if ip == "" {
				return fmt.Errorf("node %s has no InternalIP", n.Name)
			}
			if _, err := tb.Output(ctx, h, "ip", "route", "replace", n.Spec.PodCIDR, "via", ip); err != nil {
				return fmt.Errorf("route pod network of %s on %s: %w", n.Name, h, err)
			}
		}
	}
	return nil
}

// internalIP returns the Node's first InternalIP, or "".
func internalIP(n *v1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// deployCoreDNS applies the CoreDNS manifest, whose Service must have the
// kubelets' clusterDNS address dns, and waits until its Deployment is
// available.
func deployCoreDNS(ctx context.Context, tb *testbed.Testbed, client testbed.Interface, manifest, dns string, out io.Writer) error {
	data, err := os.ReadFile(manifest)
	if err != nil {
		return fmt.Errorf("read CoreDNS manifest: %w", err)
	}
	if !strings.Contains(string(data), "clusterIP: "+dns) {
		return fmt.Errorf("CoreDNS manifest %s: its Service is not at the kubelets' clusterDNS %s", manifest, dns)
	}
	const onCP = "/run/berth/coredns.yaml"
	path, err := tb.HostPath(testbed.ControlPlaneHost, onCP)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write CoreDNS manifest: %w", err)
	}
	fmt.Fprintln(out, "$ kubectl apply -f coredns.yaml")
	if _, err := tb.Kubectl(ctx, "apply", "-f", onCP); err != nil {
		return fmt.Errorf("deploy CoreDNS: %w", err)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d of %d replicas available", d.Status.AvailableReplicas, ptrValue(d.Spec.Replicas))
		return deploymentAvailable(d), nil
	})
	if err != nil {
		return fmt.Errorf("CoreDNS not available (%s; logs in %s): %w", last, tb.LogDir(), err)
	}
	return nil
}

// deploymentAvailable tells whether every wanted replica is available.
func deploymentAvailable(d *appsv1.Deployment) bool {
	return d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas >= ptrValue(d.Spec.Replicas) && d.Status.AvailableReplicas > 0
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// clusterDNS returns the first clusterDNS address of the kubelet
// configuration `kubeadm join` wrote on node.
func clusterDNS(tb *testbed.Testbed, node string) (string, error) {
	path, err := tb.HostPath(node, "/var/lib/kubelet/config.yaml")
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read kubelet configuration of %s: %w", node, err)
	}
	var cfg struct {
		ClusterDNS []string `json:"clusterDNS"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("decode kubelet configuration of %s: %w", node, err)
	}
	if len(cfg.ClusterDNS) == 0 {
		return "", fmt.Errorf("kubelet configuration of %s has no clusterDNS", node)
	}
	return cfg.ClusterDNS[0], nil
}
