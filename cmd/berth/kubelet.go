package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	apiruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/cmd/berth/config"
	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/kubelet/bootstrap"
	kubeletconfig "github.com/berthnode/berth/kubelet/config"
	"github.com/berthnode/berth/kubelet/devices"
	"github.com/berthnode/berth/kubelet/health"
	"github.com/berthnode/berth/kubelet/node"
	"github.com/berthnode/berth/kubelet/podnet"
	"github.com/berthnode/berth/kubelet/pods"
	"github.com/berthnode/berth/kubelet/staticpods"
	"github.com/berthnode/berth/kubelet/stats"
	"github.com/berthnode/berth/kubelet/volume"
	"github.com/berthnode/berth/netrules/link"
	"github.com/berthnode/berth/proxy"
	"github.com/berthnode/berth/systemd"
)

// serviceProxyLabel marks the nodes where berth is the service proxy.
const serviceProxyLabel = "berthnode.io/service-proxy"

// criConnectTimeout bounds each CRI connection attempt.
const criConnectTimeout = 2 * time.Minute

// nodeSettings is everything the kubelet part runs with, resolved from
// berth's configuration, kubeadm's files and kubelet flags.
type nodeSettings struct {
	nodeName string
	kubelet  *kubeletconfig.KubeletConfiguration
	flags    kubeletconfig.Flags
	nodeIPs  []net.IP
	certDir  string
	rootDir  string
}

// baseKubeletArgs renders berth's configuration as the kubelet flags it
// stands for: the lowest-priority source, below kubeadm-flags.env and the
// command line. Only flags without a KubeletConfiguration field: a field's
// flag would override the kubelet's file even where nobody gave it
// (berth's containerRuntimeEndpoint is a Fallback to the file instead).
func baseKubeletArgs(cfg *config.Config) []string {
	return []string{
		"--bootstrap-kubeconfig=" + cfg.Kubelet.BootstrapKubeconfig,
		"--kubeconfig=" + cfg.Kubelet.Kubeconfig,
		"--config=" + cfg.Kubelet.ConfigFile,
		"--root-dir=" + cfg.Kubelet.RootDir,
	}
}

// resolveSettings waits for the KubeletConfiguration file (on a worker that
// is not joined yet, `kubeadm join` writes it), then composes the kubelet's
// settings from its sources, one value each, in rising priority: the
// defaults, berth's configuration, the KubeletConfiguration file,
// kubeadm-flags.env and the command line (KUBELET_EXTRA_ARGS). Where two
// sources disagree, the higher wins and the conflict is logged
// (docs/kubelet.md, "Where settings come from").
func resolveSettings(ctx context.Context, cfg *config.Config, cmdline []string, clk clock.Clock) (*nodeSettings, error) {
	log := klog.FromContext(ctx)
	pre, _, err := kubeletconfig.ParseFlags(append(baseKubeletArgs(cfg), cmdline...))
	if err != nil {
		return nil, err
	}
	if err := waitForFile(ctx, pre.Config, clk); err != nil {
		return nil, err
	}
	kubeadmArgs, err := kubeletconfig.ReadKubeadmFlags(cfg.Kubelet.KubeadmFlagsFile)
	if err != nil {
		return nil, err
	}
	args := append(append(baseKubeletArgs(cfg), kubeadmArgs...), cmdline...)
	flags, warnings, err := kubeletconfig.ParseFlags(args)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		log.Info("Warning: "+w, "hint", "berth accepts upstream kubelet's flags but does not implement every one")
	}
	// kubeadm-flags.env may set the verbosity too; the command line wins.
	if err := setLogVerbosity(flags.Verbosity, flags.VModule); err != nil {
		return nil, err
	}
	logFlagConflicts(log, kubeadmArgs, cmdline)
	kc, conflicts, err := kubeletconfig.Compose(flags.Config, flags, kubeletconfig.Fallbacks{
		ContainerRuntimeEndpoint: cfg.Kubelet.ContainerRuntimeEndpoint,
	})
	if err != nil {
		return nil, err
	}
	for _, c := range conflicts {
		log.Info("Setting given by two sources; the higher one counts", "field", c.Field,
			"used", c.Used, "from", c.UsedFrom, "ignored", c.Ignored, "ignoredFrom", c.IgnoredFrom)
	}
	s := &nodeSettings{nodeName: cfg.NodeName, kubelet: kc, flags: flags, rootDir: flags.RootDir}
	if flags.HostnameOverride != "" {
		s.nodeName = strings.ToLower(strings.TrimSpace(flags.HostnameOverride))
	}
	s.certDir = flags.CertDir
	if s.certDir == "" {
		s.certDir = filepath.Join(s.rootDir, "pki")
	}
	for _, ip := range flags.NodeIPs {
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return nil, fmt.Errorf("--node-ip %q: not an IP address", ip)
		}
		s.nodeIPs = append(s.nodeIPs, parsed)
	}
	return s, nil
}

// logFlagConflicts logs the KubeletConfiguration flags that
// kubeadm-flags.env and the command line both give, differently: the
// command line's counts, as under systemd's kubelet unit.
func logFlagConflicts(log klog.Logger, kubeadmArgs, cmdline []string) {
	fromKubeadm, _, err1 := kubeletconfig.ParseFlags(kubeadmArgs)
	fromCmdline, _, err2 := kubeletconfig.ParseFlags(cmdline)
	if err1 != nil || err2 != nil {
		// Parsed together already; an error was reported there.
		return
	}
	for name, v := range fromCmdline.Overrides {
		if old, ok := fromKubeadm.Overrides[name]; ok && old != v {
			log.Info("Kubelet flag given by kubeadm-flags.env and the command line; the command line counts",
				"flag", "--"+name, "used", v, "ignored", old)
		}
	}
}

// waitForFile polls until path exists, logging once that it waits.
func waitForFile(ctx context.Context, path string, clk clock.Clock) error {
	for attempt := 0; ; attempt++ {
		_, err := os.Stat(path)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("kubelet configuration: %w", err)
		}
		if attempt == 0 {
			klog.FromContext(ctx).Info("Waiting for the kubelet configuration (written by kubeadm join)", "path", path)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-clk.After(time.Second):
		}
	}
}

// runKubelet runs the kubelet part of berth until ctx ends. Shutting down
// while it still waits (for kubeadm's files, for the certificate) is not an
// error.
func runKubelet(ctx context.Context, cfg *config.Config, cmdline []string) error {
	err := startKubelet(ctx, cfg, cmdline)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

func startKubelet(ctx context.Context, cfg *config.Config, cmdline []string) error {
	clk := clock.RealClock{}
	svc := startService(ctx, clk)
	svc.status(ctx, "waiting for the kubelet configuration (kubeadm join writes it)")
	s, err := resolveSettings(ctx, cfg, cmdline, clk)
	if err != nil {
		return err
	}
	svc.status(ctx, "starting: TLS bootstrap, container runtime")
	log := klog.FromContext(ctx).WithValues("node", s.nodeName)
	ctx = klog.NewContext(ctx, log)
	boot := bootstrap.Config{
		NodeName:            s.nodeName,
		Kubeconfig:          s.flags.Kubeconfig,
		BootstrapKubeconfig: s.flags.BootstrapKubeconfig,
		CertDir:             s.certDir,
		Clock:               clk,
	}
	restConfig, err := bootstrap.LoadClientConfig(ctx, boot)
	if err != nil {
		return err
	}
	restConfig.QPS = float32(*s.kubelet.KubeAPIQPS)
	restConfig.Burst = int(s.kubelet.KubeAPIBurst)
	restConfig.UserAgent = "berth/" + version
	// Protobuf by default, as the kubelet: a third of JSON's bytes and
	// far less to decode and collect at every list and watch event.
	restConfig.ContentType = s.kubelet.ContentType
	restConfig.AcceptContentTypes = s.kubelet.ContentType + "," + apiruntime.ContentTypeJSON
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("node client: %w", err)
	}
	// Events have a rate limit of their own (eventRecordQPS, eventBurst), as
	// with kubelet: in a burst of pods they must not hold back the status
	// patches and API reads the pods wait for.
	eventConfig := rest.CopyConfig(restConfig)
	eventConfig.QPS = float32(*s.kubelet.EventRecordQPS)
	eventConfig.Burst = int(s.kubelet.EventBurst)
	eventClient, err := kubernetes.NewForConfig(eventConfig)
	if err != nil {
		return fmt.Errorf("node event client: %w", err)
	}
	log.Info("Connecting to the container runtime", "endpoint", s.kubelet.ContainerRuntimeEndpoint)
	runtime, err := cri.Connect(ctx, s.kubelet.ContainerRuntimeEndpoint, criConnectTimeout)
	if err != nil {
		return err
	}
	ensureSandboxImage(ctx, runtime.Runtime, s.kubelet.ContainerRuntimeEndpoint, s.flags.PodInfraContainerImage)

	g, gctx := errgroup.WithContext(ctx)
	// The pod workers need the node's addresses for pod status before the
	// node controller knows them: it resolves them first thing.
	var nodes *node.Controller
	nodeIPs := func() []net.IP {
		if nodes == nil {
			return nil
		}
		return nodes.NodeIPs()
	}
	factory := newClusterInformers(client)
	var checks []node.Check
	if cfg.Kubelet.PodNetwork == config.PodNetworkBuiltin {
		if err := checkClusterReads(ctx, client); err != nil {
			log.Error(err, "The built-in pod network cannot see the other nodes")
		}
		network, err := newPodNetwork(s.nodeName, factory, clk)
		if err != nil {
			return err
		}
		checks = append(checks, node.Check{Name: "pod network", Ready: network.Ready})
		g.Go(func() error { return network.Run(gctx) })
	}
	if cfg.Proxy.Enabled {
		// kubeadm's kube-proxy DaemonSet, patched as the README says,
		// stays off nodes with this label.
		if s.flags.NodeLabels == nil {
			s.flags.NodeLabels = map[string]string{}
		}
		s.flags.NodeLabels[serviceProxyLabel] = "berth"
	}
	events := record.NewBroadcaster()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: eventClient.CoreV1().Events("")})
	defer events.Shutdown()
	// Node status updates asked for by the plugins come only once the pod
	// manager runs, after nodes is set.
	nodePlugins, err := newNodePlugins(ctx, s, client, events.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: s.nodeName}), clk, func() {
		if nodes != nil {
			nodes.Kick()
		}
	})
	if err != nil {
		return err
	}
	csiNode, devs := nodePlugins.csi, nodePlugins.devices
	podManager, err := newPodManager(s, podManagerInputs{client: client, runtime: runtime, informers: factory, events: events, nodeIPs: nodeIPs, devices: devs, csi: csiNode}, clk)
	if err != nil {
		return err
	}
	checks = append(checks, node.Check{Name: "pod workers", Ready: podManager.Healthy}, shutdownCheck(podManager))
	nodes, err = node.New(node.Config{
		NodeName: s.nodeName,
		Client:   client,
		Runtime:  runtime.Runtime,
		Kubelet:  s.kubelet,
		NodeIPs:  s.nodeIPs,
		Labels:   s.flags.NodeLabels,
		Taints:   s.kubelet.RegisterWithTaints,
		RootDir:  s.rootDir,
		Checks:   checks,
		Machine:  node.HostMachine{},
		Clock:    clk,
		// Extended resources of device plugins.
		ExtendedResources:      devs.Resources,
		ResetExtendedResources: devs.CheckpointMissing,

		VolumesInUse: csiNode.VolumesInUse,
	})
	if err != nil {
		return err
	}
	factory.Start(gctx.Done())
	svc.watch(systemd.Check{Name: "node status", Healthy: nodes.Healthy}, systemd.Check{Name: "pod workers", Healthy: podManager.Healthy})
	var proxier atomic.Pointer[proxy.Proxier]
	ready := []systemd.Condition{{Name: "node registered", Met: nodes.Registered}}
	if cfg.Proxy.Enabled {
		ready = append(ready, systemd.Condition{Name: "first service proxy sync", Met: func() bool {
			p := proxier.Load()
			return p != nil && p.Ready() == nil
		}})
	}
	g.Go(func() error {
		svc.status(gctx, "registering the node, first service sync")
		if err := svc.reportReady(gctx, clk, ready...); err != nil && gctx.Err() == nil {
			log.Error(err, "Cannot report readiness to systemd")
		}
		svc.status(gctx, "running")
		return nil
	})
	g.Go(func() error { return nodes.Run(gctx) })
	if err := nodePlugins.run(gctx, g, podManager); err != nil {
		return err
	}
	g.Go(func() error {
		return runShutdownManager(gctx, s.kubelet, nodeShutdown{pods: podManager, nodes: nodes}, clk)
	})
	g.Go(func() error { return podManager.Run(gctx) })
	if cfg.Proxy.Enabled {
		g.Go(func() error {
			return runProxy(gctx, proxyInputs{
				cfg:       cfg,
				nodeName:  s.nodeName,
				client:    client,
				nodeIPs:   nodeIPs,
				informers: factory,
				proxier:   &proxier,
				recorder:  events.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kube-proxy", Host: s.nodeName}),
			})
		})
	}
	if s.kubelet.RotateCertificates {
		g.Go(func() error { return bootstrap.Rotate(gctx, boot) })
	}
	g.Go(func() error {
		releaseStartupPages(gctx, func() error { return errors.Join(nodes.Healthy(), podManager.Healthy()) }, clk)
		return nil
	})
	g.Go(func() error {
		return runKubeletAPI(gctx, s, kubeletAPIInputs{
			client:     client,
			runtime:    runtime,
			pods:       podManager,
			volumes:    csiNode,
			nodeIPs:    nodes.NodeIPs,
			healthz:    func() error { return errors.Join(nodes.Healthy(), podManager.Healthy()) },
			collectors: append(devs.Collectors(), nodePlugins.watcher.Collector(), stats.NewVolumeStatsCollector(csiNode)),
		})
	})
	healthAddr := net.JoinHostPort(s.kubelet.HealthzBindAddress, strconv.Itoa(int(*s.kubelet.HealthzPort)))
	g.Go(func() error {
		return health.Serve(gctx, healthAddr, []health.Check{
			{Name: "node", Healthy: nodes.Healthy},
			{Name: "pod workers", Healthy: podManager.Healthy},
			{Name: "plugin registration", Healthy: nodePlugins.watcher.Healthy},
		})
	})
	return g.Wait()
}

// newPodNetwork returns berth's built-in pod network: a CNI configuration
// from this node's podCIDR, and routes to the other nodes' podCIDRs.
func newPodNetwork(nodeName string, factory informers.SharedInformerFactory, clk clock.WithTicker) (*podnet.Controller, error) {
	routes, err := link.NewRoutes()
	if err != nil {
		return nil, fmt.Errorf("pod network routes: %w", err)
	}
	return podnet.New(podnet.Config{
		NodeName:    nodeName,
		Nodes:       factory.Core().V1().Nodes(),
		Routes:      routes,
		HairpinMode: true,
		Clock:       clk,
	})
}

// newPodManager returns the pod workers with their volumes and events.
// podManagerInputs are the shared parts the pod manager is built from.
type podManagerInputs struct {
	client    kubernetes.Interface
	runtime   *cri.Services
	informers informers.SharedInformerFactory
	events    record.EventBroadcaster
	nodeIPs   func() []net.IP
	// devices allocates device plugins' devices.
	devices *devices.Manager
	// csi publishes CSI volumes; nil refuses them.
	csi volume.CSI
}

func newPodManager(s *nodeSettings, in podManagerInputs, clk clock.WithTicker) (*pods.Manager, error) {
	client, runtime, events, nodeIPs := in.client, in.runtime, in.events, in.nodeIPs
	volumes, err := volume.New(volume.Config{
		RootDir:  s.rootDir,
		Client:   client,
		NodeName: s.nodeName,
		Mounter:  volume.NewSystemMounter(),
		Clock:    clk,
		CSI:      in.csi,
	})
	if err != nil {
		return nil, err
	}
	static, err := staticpods.New(staticpods.Config{
		Dir:      s.kubelet.StaticPodPath,
		NodeName: s.nodeName,
		Period:   s.kubelet.FileCheckFrequency.Duration,
		Clock:    clk,
	})
	if err != nil {
		return nil, err
	}
	recorder := events.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: s.nodeName})
	return pods.New(pods.Config{
		NodeName:   s.nodeName,
		Client:     client,
		Runtime:    runtime.Runtime,
		Images:     runtime.Images,
		Volumes:    volumes,
		Recorder:   recorder,
		Kubelet:    s.kubelet,
		RootDir:    s.rootDir,
		PodLogsDir: s.kubelet.PodLogsDir,
		NodeIPs:    nodeIPs,
		StaticPods: static,
		Informers:  in.informers,
		Devices:    in.devices,
		Clock:      clk,
	})
}
