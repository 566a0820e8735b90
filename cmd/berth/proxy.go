package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
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
	if err := applyConntrack(log, sysctl.Proc, conntrackParams, settings.Conntrack, runtime.NumCPU()); err != nil {
		return fmt.Errorf("service proxy: %w", err)
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
		b, err := newBackend(f, settings)
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
	log.Info("Starting service proxy", "mode", settings.Mode, "families", opts.Families, "clusterCIDRs", opts.ClusterCIDRs,
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

// newBackend returns the backend of the settings' proxy mode for one
// family.
func newBackend(f proxy.Family, settings *proxyconfig.Settings) (proxy.Backend, error) {
	switch settings.Mode {
	case proxyconfig.ModeIPTables:
		return iptables.New(iptables.Config{Family: f, MasqueradeBit: settings.MasqueradeBit})
	case proxyconfig.ModeIPVS:
		return ipvs.New(ipvs.Config{
			Family:        f,
			Scheduler:     settings.IPVS.Scheduler,
			MasqueradeBit: settings.MasqueradeBit,
			ExcludeCIDRs:  settings.IPVS.ExcludeCIDRs,
			StrictARP:     settings.IPVS.StrictARP,
			Timeouts:      ipvs.Timeouts{TCP: settings.IPVS.TCPTimeout, TCPFin: settings.IPVS.TCPFinTimeout, UDP: settings.IPVS.UDPTimeout},
		})
	}
	return nil, fmt.Errorf("proxy mode %q: %w", settings.Mode, proxyconfig.ErrModeUnavailable)
}

// availableModes are the proxy modes this berth has backends for.
var availableModes = []proxyconfig.Mode{proxyconfig.ModeIPTables, proxyconfig.ModeIPVS}

// proxySettings merges berth's kube-proxy settings file (if any) over the
// cluster's kube-system/kube-proxy ConfigMap, as kube-proxy's own defaults
// on a kubeadm cluster, picks the mode (berth's proxy.mode first; see
// proxyconfig.ChooseMode) and logs the choice, any conflict, and the
// settings berth does not apply.
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
	cluster, err := clusterProxyConfig(ctx, client)
	if err != nil {
		return nil, err
	}
	in := proxyconfig.ModeInputs{Berth: proxyconfig.Mode(cfg.Proxy.Mode), Available: availableModes}
	if file != nil {
		in.File = proxyconfig.Mode(file.Mode)
	}
	if cluster != nil {
		in.ConfigMap = proxyconfig.Mode(cluster.Mode)
	}
	choice, err := proxyconfig.ChooseMode(in)
	if err != nil {
		return nil, fmt.Errorf("kube-proxy settings: %w", err)
	}
	choice.Log(log)
	merged := proxyconfig.Merge(file, cluster)
	merged.Mode = kubeproxyv1alpha1.ProxyMode(choice.Mode)
	proxyconfig.SetDefaults(merged)
	settings, err := proxyconfig.Resolve(merged)
	if err != nil {
		return nil, fmt.Errorf("kube-proxy settings: %w", err)
	}
	settings.LogRefused(log)
	return settings, nil
}

// clusterProxyConfig reads the cluster's kube-proxy ConfigMap; nil when
// there is none, berth may not read it, or it does not decode (logged).
func clusterProxyConfig(ctx context.Context, client kubernetes.Interface) (*proxyconfig.KubeProxyConfiguration, error) {
	log := klog.FromContext(ctx)
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	switch {
	case err == nil:
		cluster, err := proxyconfig.FromConfigMap(cm.Data)
		if err != nil {
			log.Error(err, "Ignoring the cluster's kube-proxy ConfigMap", "configMap", "kube-system/kube-proxy")
			return nil, nil
		}
		return cluster, nil
	case apierrors.IsNotFound(err):
		log.V(2).Info("The cluster has no kube-proxy ConfigMap")
	case apierrors.IsForbidden(err):
		log.Info("Cannot read the cluster's kube-proxy ConfigMap; using defaults", "hint", "berth rbac | kubectl apply -f -")
	default:
		return nil, fmt.Errorf("read kube-system/kube-proxy: %w", err)
	}
	return nil, nil
}

// conntrackParams is where the conntrack module's parameters are (its
// hash size).
const conntrackParams = sysctl.Root("/sys/module/nf_conntrack/parameters")

// applyConntrack sets the conntrack kernel parameters of the settings, as
// kube-proxy does at startup: the table's limit and hash size only upward,
// the timeouts that are set, tcp_be_liberal when on.
//
// Without the nf_conntrack module (its parameters missing) nothing can be
// set: that is logged, with the fix, and the proxy goes on (its rules load
// the module; the settings apply at berth's next start).
func applyConntrack(log klog.Logger, proc, params sysctl.Root, c proxyconfig.Conntrack, numCPU int) error {
	v, err := proc.Get("net.netfilter.nf_conntrack_max")
	if errors.Is(err, fs.ErrNotExist) {
		log.Info("Not applying the conntrack settings: the nf_conntrack module is not loaded",
			"hint", "load it at boot (nf_conntrack in /etc/modules-load.d/) so that berth applies them when it starts")
		return nil
	}
	curMax, _ := strconv.Atoi(v)
	changed, err := proc.Ensure(c.Sysctls(numCPU, curMax))
	if err != nil {
		return fmt.Errorf("conntrack settings: %w", err)
	}
	if len(changed) > 0 {
		log.Info("Set conntrack kernel parameters", "names", changed)
	}
	if m := c.Max(numCPU); m > 0 {
		hs, err := params.Get("hashsize")
		if cur, _ := strconv.Atoi(hs); err == nil && cur < m/4 {
			if _, err := params.Ensure(map[string]string{"hashsize": strconv.Itoa(m / 4)}); err != nil {
				return fmt.Errorf("conntrack hash size: %w", err)
			}
			log.Info("Set the conntrack hash size", "hashsize", m/4)
		}
	}
	return nil
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
