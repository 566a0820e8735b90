package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/cmd/berth/config"
	"github.com/berthnode/berth/netrules/conntrack"
	"github.com/berthnode/berth/netrules/iptables"
	"github.com/berthnode/berth/netrules/ipvs"
	"github.com/berthnode/berth/netrules/sysctl"
	"github.com/berthnode/berth/proxy"
	proxyconfig "github.com/berthnode/berth/proxy/config"
	"github.com/berthnode/berth/proxy/healthcheck"
	"github.com/berthnode/berth/proxy/metrics"
)

// proxySysctls are the kernel parameters service rules depend on:
// forwarding, and bridged pod traffic passing through iptables (without it,
// a pod reaching a service whose endpoint is on the same bridge never sees
// the replies un-NATed).
var proxySysctls = map[string]string{
	"net.ipv4.ip_forward":                "1",
	"net.bridge.bridge-nf-call-iptables": "1",
}

// proxyInputs are what the proxy part needs from the rest of berth.
type proxyInputs struct {
	cfg      *config.Config
	nodeName string
	client   kubernetes.Interface
	nodeIPs  func() []net.IP
	// informers is the shared cluster-wide informer factory (Services,
	// EndpointSlices); the caller starts it.
	informers informers.SharedInformerFactory
	recorder  record.EventRecorder
	// proxier receives the proxier once it exists, for readiness.
	proxier *atomic.Pointer[proxy.Proxier]
}

// runProxy runs berth's service proxy (kube-proxy's job) until ctx ends.
func runProxy(ctx context.Context, in proxyInputs) error {
	log := klog.FromContext(ctx).WithName("proxy")
	ctx = klog.NewContext(ctx, log)
	settings, err := proxySettings(ctx, in.cfg, in.client)
	if err != nil {
		return err
	}
	if changed, err := sysctl.Proc.Ensure(proxySysctls); err != nil {
		return fmt.Errorf("service proxy: %w", err)
	} else if len(changed) > 0 {
		log.Info("Set kernel parameters", "names", changed)
	}
	ips, err := waitNodeIPs(ctx, in.nodeIPs)
	if err != nil {
		return err
	}
	opts := proxy.Options{
		NodeName:          in.nodeName,
		NodeIPs:           ips,
		ClusterCIDRs:      settings.ClusterCIDRs,
		MasqueradeAll:     settings.MasqueradeAll,
		NodePortAddresses: settings.NodePortAddresses,
		NodePortPrimary:   settings.NodePortPrimary,
	}
	backends := map[proxy.Family]proxy.Backend{}
	for _, ip := range ips {
		f := proxy.Of(ip)
		if _, ok := backends[f]; ok {
			continue
		}
		b, err := newBackend(in.cfg.Proxy.Mode, f, settings)
		if err != nil {
			return fmt.Errorf("service proxy: %w", err)
		}
		backends[f] = b
		opts.Families = append(opts.Families, f)
	}
	ct, err := conntrack.New()
	if err != nil {
		return fmt.Errorf("service proxy conntrack: %w", err)
	}
	defer ct.Close()

	var proxier *proxy.Proxier
	serviceHealth := healthcheck.NewServiceServer(healthcheck.ServiceServerConfig{
		ProxyHealthy: func() bool { return proxier != nil && proxier.Healthy() == nil },
		Recorder:     in.recorder,
	})
	defer serviceHealth.Close()
	m := metrics.New()
	factory := in.informers
	nodeFactory := proxy.NodeInformerFactory(in.client, in.nodeName)
	proxier, err = proxy.NewProxier(proxy.Config{
		NodeName:      in.nodeName,
		Informers:     factory,
		NodeInformers: nodeFactory,
		Backends:      backends,
		Options:       opts,
		Recorder:      in.recorder,
		Conntrack:     ct,
		ServiceHealth: serviceHealth,
		Metrics:       m,
		MinSyncPeriod: settings.MinSyncPeriod,
		SyncPeriod:    settings.SyncPeriod,
		Clock:         clock.RealClock{},
	})
	if err != nil {
		return err
	}
	if in.proxier != nil {
		in.proxier.Store(proxier)
	}
	factory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	log.Info("Starting service proxy", "mode", in.cfg.Proxy.Mode, "families", opts.Families, "clusterCIDRs", opts.ClusterCIDRs,
		"healthz", settings.HealthzBindAddress, "metrics", settings.MetricsBindAddress)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return proxier.Run(gctx) })
	g.Go(func() error {
		select {
		case <-gctx.Done():
		case <-proxier.InformersSynced():
			// The first sync is about to peak: the pages that reading the
			// configuration, connecting and listing touched are not needed.
			releaseExecutablePages(gctx, "service proxy informers synced")
		}
		return nil
	})
	for _, b := range backends {
		if r, ok := b.(interface{ Run(context.Context) error }); ok {
			// IPVS: the destinations draining after their endpoints went.
			g.Go(func() error { return r.Run(gctx) })
		}
	}
	g.Go(func() error {
		return healthcheck.Serve(gctx, "proxy healthz", settings.HealthzBindAddress, healthcheck.NewHandler(proxier))
	})
	g.Go(func() error { return m.Serve(gctx, settings.MetricsBindAddress) })
	return g.Wait()
}

// newBackend returns the backend of the proxy mode for one family.
func newBackend(mode config.ProxyMode, f proxy.Family, settings *proxyconfig.Settings) (proxy.Backend, error) {
	switch mode {
	case config.ProxyModeIPTables:
		return iptables.New(iptables.Config{Family: f, MasqueradeBit: settings.MasqueradeBit})
	case config.ProxyModeIPVS:
		return ipvs.New(ipvs.Config{
			Family:        f,
			Scheduler:     settings.IPVS.Scheduler,
			MasqueradeBit: settings.MasqueradeBit,
			ExcludeCIDRs:  settings.IPVS.ExcludeCIDRs,
			StrictARP:     settings.IPVS.StrictARP,
		})
	}
	return nil, fmt.Errorf("proxy mode %q: want iptables or ipvs", mode)
}

// proxySettings merges berth's kube-proxy settings file (if any) over the
// cluster's kube-system/kube-proxy ConfigMap, as kube-proxy's own defaults
// on a kubeadm cluster.
func proxySettings(ctx context.Context, cfg *config.Config, client kubernetes.Interface) (*proxyconfig.Settings, error) {
	log := klog.FromContext(ctx)
	var file *proxyconfig.KubeProxyConfiguration
	if cfg.Proxy.ConfigFile != "" {
		f, err := proxyconfig.Load(cfg.Proxy.ConfigFile)
		if err != nil {
			return nil, err
		}
		file = f
	}
	var cluster *proxyconfig.KubeProxyConfiguration
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	switch {
	case err == nil:
		if cluster, err = proxyconfig.FromConfigMap(cm.Data); err != nil {
			log.Error(err, "Ignoring the cluster's kube-proxy ConfigMap", "configMap", "kube-system/kube-proxy")
		}
	case apierrors.IsNotFound(err):
		log.V(2).Info("The cluster has no kube-proxy ConfigMap")
	case apierrors.IsForbidden(err):
		log.Info("Cannot read the cluster's kube-proxy ConfigMap; using defaults", "hint", "berth rbac | kubectl apply -f -")
	default:
		return nil, fmt.Errorf("read kube-system/kube-proxy: %w", err)
	}
	merged := proxyconfig.Merge(file, cluster)
	proxyconfig.SetDefaults(merged)
	settings, err := proxyconfig.Resolve(merged)
	if err != nil {
		return nil, fmt.Errorf("kube-proxy settings: %w", err)
	}
	return settings, nil
}

// waitNodeIPs waits until the node's addresses are known (the node
// controller resolves them first thing).
func waitNodeIPs(ctx context.Context, nodeIPs func() []net.IP) ([]netip.Addr, error) {
	for {
		if ips := nodeIPs(); len(ips) > 0 {
			var out []netip.Addr
			for _, ip := range ips {
				a, ok := netip.AddrFromSlice(ip)
				if ok {
					out = append(out, a.Unmap())
				}
			}
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
