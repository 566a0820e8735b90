package proxybench

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/netrules/xtables"
	"github.com/berthnode/berth/proxy"
	proxyconfig "github.com/berthnode/berth/proxy/config"
)

// proxyView is how berth's proxy on the node is set up: Compute's options
// and the render options, resolved from the same inputs berth resolves
// them from (the cluster's kube-proxy ConfigMap and the Node).
type proxyView struct {
	opts   proxy.Options
	render iptables.RenderOptions
}

// loadProxyView resolves the kube-proxy settings as berth does without a
// settings file of its own, and takes the node's addresses from its Node.
func loadProxyView(ctx context.Context, client kubernetes.Interface, nodeName string) (proxyView, error) {
	var cluster *proxyconfig.KubeProxyConfiguration
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	switch {
	case err == nil:
		if cluster, err = proxyconfig.FromConfigMap(cm.Data); err != nil {
			return proxyView{}, fmt.Errorf("kube-proxy ConfigMap: %w", err)
		}
	case !apierrors.IsNotFound(err):
		return proxyView{}, fmt.Errorf("read kube-system/kube-proxy: %w", err)
	}
	merged := proxyconfig.Merge(nil, cluster)
	proxyconfig.SetDefaults(merged)
	settings, err := proxyconfig.Resolve(merged)
	if err != nil {
		return proxyView{}, fmt.Errorf("kube-proxy settings: %w", err)
	}
	node, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		return proxyView{}, fmt.Errorf("node %s: %w", nodeName, err)
	}
	var ips []netip.Addr
	for _, a := range node.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == v1.NodeInternalIP && ip.Is4() {
			ips = append(ips, ip)
		}
	}
	if len(ips) == 0 {
		return proxyView{}, fmt.Errorf("node %s has no IPv4 InternalIP", nodeName)
	}
	return proxyView{
		opts: proxy.Options{
			NodeName:          nodeName,
			NodeIPs:           ips,
			Families:          []proxy.Family{proxy.IPv4},
			ClusterCIDRs:      settings.ClusterCIDRs,
			MasqueradeAll:     settings.MasqueradeAll,
			NodePortAddresses: settings.NodePortAddresses,
			NodePortPrimary:   settings.NodePortPrimary,
		},
		render: iptables.RenderOptions{MasqueradeBit: settings.MasqueradeBit},
	}, nil
}

// payloads are the iptables-restore inputs berth should send for a size,
// rendered by berth's own code from every Service and EndpointSlice of the
// cluster.
type payloads struct {
	// full is the full payload; flip is the partial one of the first
	// endpoint flip (flipIP(0)), to apply on top of full.
	full, flip iptables.Payload
	// rules is how many rules berth holds once full is applied (its
	// kubeproxy_sync_proxy_rules_iptables_total).
	rules int
	// endpointChains is the number of endpoint chains full declares.
	endpointChains int
	// serviceChains maps each service port ("ns/name:port") to the chain
	// its cluster IP jumps to.
	serviceChains map[string]string
}

// cluster is every Service and EndpointSlice of the cluster and berth's
// Node, as berth's informers see them.
type cluster struct {
	svcs   []*v1.Service
	slices []*discovery.EndpointSlice
	node   *v1.Node
}

// fetchCluster lists the objects berth's proxy watches.
func fetchCluster(ctx context.Context, client kubernetes.Interface, nodeName string) (*cluster, error) {
	svcList, err := client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	sliceList, err := client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list endpointslices: %w", err)
	}
	c := &cluster{}
	if c.node, err = client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{}); err != nil {
		return nil, fmt.Errorf("node %s: %w", nodeName, err)
	}
	for i := range svcList.Items {
		c.svcs = append(c.svcs, &svcList.Items[i])
	}
	for i := range sliceList.Items {
		c.slices = append(c.slices, &sliceList.Items[i])
	}
	return c, nil
}

// rules is how many rules berth holds once it has synced c.
func (c *cluster) rules(view proxyView) (int, error) {
	state, err := computeState(view, c.svcs, c.slices, c.node, "")
	if err != nil {
		return 0, err
	}
	full, err := iptables.Render(state, view.render, nil, nil)
	if err != nil {
		return 0, fmt.Errorf("render full payload: %w", err)
	}
	return ruleCount(&full), nil
}

// ruleCount is how many rules the kernel holds once a full payload is
// applied: what berth reports as kubeproxy_sync_proxy_rules_iptables_total.
func ruleCount(full *iptables.Payload) int {
	return full.Rules
}

// buildPayloads computes the State of the objects with proxy.Compute and
// renders the full payload, and the partial payload after endpoint 0 of
// Service flipIndex in ns moved to flipIP(0), with one Renderer as berth's
// backend does.
func buildPayloads(view proxyView, c *cluster, ns string, flipIndex int) (*payloads, error) {
	state, err := computeState(view, c.svcs, c.slices, c.node, ns)
	if err != nil {
		return nil, err
	}
	renderer := iptables.NewRenderer(view.render)
	full, err := renderer.Render(state, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("render full payload: %w", err)
	}
	sliceName := serviceName(flipIndex) + "-bench"
	after := make([]*discovery.EndpointSlice, len(c.slices))
	found := false
	for i, s := range c.slices {
		after[i] = s
		if s.Namespace == ns && s.Name == sliceName {
			after[i], found = flipped(s, flipIP(0), time.Time{}), true
		}
	}
	if !found {
		return nil, fmt.Errorf("no EndpointSlice %s/%s to flip", ns, sliceName)
	}
	flipState, err := computeState(view, c.svcs, after, c.node, ns)
	if err != nil {
		return nil, err
	}
	key := proxy.ServicePortName{Namespace: ns, Name: serviceName(flipIndex), Port: portName, Protocol: proxy.TCP}.Key()
	flip, err := renderer.Render(flipState, map[string]bool{key: true}, nil)
	if err != nil {
		return nil, fmt.Errorf("render partial payload: %w", err)
	}
	p := &payloads{full: full, flip: flip, rules: ruleCount(&full), serviceChains: map[string]string{}}
	for _, t := range full.Tables {
		p.endpointChains += countEndpointChains(t.Data)
		if t.Table == xtables.TableNAT {
			p.serviceChains = serviceChains(t.Data)
		}
	}
	return p, nil
}

// computeState runs Compute on the objects; a Problem with the benchmark's
// own objects (in ns, if not "") is an error: the payloads would not be the
// ones the benchmark means.
func computeState(view proxyView, svcs []*v1.Service, slices []*discovery.EndpointSlice, node *v1.Node, ns string) (*proxy.State, error) {
	states, problems := proxy.Compute(proxy.NewSnapshot(svcs, slices, node), view.opts)
	for _, pr := range problems {
		if ns != "" && pr.Service.Namespace == ns {
			return nil, fmt.Errorf("compute: %s: %s", pr.Service, pr.Message)
		}
	}
	st := states[proxy.IPv4]
	if st == nil {
		return nil, fmt.Errorf("compute: no IPv4 state")
	}
	return st, nil
}

// serviceChains reads, from a nat payload, the chain each service port's
// cluster-IP rule in BERTH-SERVICES jumps to, by the port's name
// ("ns/name:port", from the rule's comment "ns/name:port cluster IP").
func serviceChains(nat []byte) map[string]string {
	const rulePrefix = "-A " + iptables.ChainServices + " "
	out := map[string]string{}
	for line := range strings.Lines(string(nat)) {
		if !strings.HasPrefix(line, rulePrefix) {
			continue
		}
		_, rest, ok := strings.Cut(line, `--comment "`)
		if !ok {
			continue
		}
		comment, rest, ok := strings.Cut(rest, `"`)
		name, isClusterIP := strings.CutSuffix(comment, " cluster IP")
		if !ok || !isClusterIP {
			continue
		}
		if _, target, ok := strings.Cut(rest, " -j "); ok {
			out[name] = strings.Fields(target)[0]
		}
	}
	return out
}
