package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/berthnode/berth/cri"
	"github.com/berthnode/berth/kubelet/logs"
	"github.com/berthnode/berth/kubelet/pods"
	"github.com/berthnode/berth/kubelet/server"
	"github.com/berthnode/berth/kubelet/stats"
	"github.com/berthnode/berth/kubelet/stream"
)

// kubeletAPIInputs are the parts of the node the kubelet API serves.
type kubeletAPIInputs struct {
	client  kubernetes.Interface
	runtime *cri.Services
	pods    *pods.Manager
	// volumes tells the statistics of the pods' CSI volumes.
	volumes stats.VolumeSource
	// nodeIPs are the node's addresses, for the serving certificate.
	nodeIPs func() []net.IP
	healthz func() error
	// collectors are more metrics for /metrics (plugin registration's).
	collectors []prometheus.Collector
}

// runKubeletAPI serves the kubelet API on :10250 (kubectl logs, exec,
// attach, port-forward, stats, metrics) and rotates container logs, until
// ctx ends.
func runKubeletAPI(ctx context.Context, s *nodeSettings, in kubeletAPIInputs) error {
	cfg, err := server.FromKubeletConfiguration(s.kubelet)
	if err != nil {
		return fmt.Errorf("kubelet API: %w", err)
	}
	cfg.NodeName = s.nodeName
	cfg.Client = in.client
	cfg.Clock = clock.RealClock{}
	cfg.TLS.Dir = s.certDir
	cfg.TLS.Hostname = s.nodeName
	// The serving certificate names the node's addresses, known once the
	// node controller has found them.
	ips, err := waitNodeIPs(ctx, in.nodeIPs)
	if err != nil {
		return err
	}
	for _, ip := range ips {
		cfg.TLS.IPs = append(cfg.TLS.IPs, net.IP(ip.AsSlice()))
	}
	handlers, err := kubeletHandlers(s, in)
	if err != nil {
		return err
	}
	cfg.Handlers = handlers
	srv, err := server.New(cfg)
	if err != nil {
		return fmt.Errorf("kubelet API: %w", err)
	}
	maxSize, err := logs.ParseSize(s.kubelet.ContainerLogMaxSize)
	if err != nil {
		return fmt.Errorf("containerLogMaxSize: %w", err)
	}
	rotator, err := logs.NewRotator(logs.Config{
		Runtime:  in.runtime.Runtime,
		MaxSize:  maxSize,
		MaxFiles: int(*s.kubelet.ContainerLogMaxFiles),
		Interval: s.kubelet.ContainerLogMonitorInterval.Duration,
	})
	if err != nil {
		return fmt.Errorf("container log rotation: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error { return rotator.Run(gctx) })
	return g.Wait()
}

// kubeletHandlers builds the handlers behind the kubelet API's
// authentication and authorization.
func kubeletHandlers(s *nodeSettings, in kubeletAPIInputs) (server.Handlers, error) {
	logHandler, err := logs.NewHandler(logs.HandlerConfig{Runtime: in.runtime.Runtime})
	if err != nil {
		return server.Handlers{}, err
	}
	streaming, err := stream.New(stream.Config{Runtime: in.runtime.Runtime})
	if err != nil {
		return server.Handlers{}, err
	}
	provider, err := stats.NewProvider(stats.Config{
		Runtime:  in.runtime.Runtime,
		Images:   in.runtime.Images,
		NodeName: s.nodeName,
		RootFS:   s.rootDir,
		Volumes:  in.volumes,
	})
	if err != nil {
		return server.Handlers{}, err
	}
	statsMux := http.NewServeMux()
	statsMux.Handle(stats.SummaryPath, stats.NewSummaryHandler(provider))
	statsMux.Handle(stats.ResourceMetricsPath, stats.NewResourceMetricsHandler(provider))
	var profiling http.Handler
	if ptr.Deref(s.kubelet.EnableProfilingHandler, true) {
		profiling = profilingHandler()
	}
	return server.Handlers{
		Pods:        in.pods.Pods,
		RunningPods: in.pods.RunningPodsHandler(),
		Logs:        logHandler,
		Streaming:   streaming,
		Stats:       statsMux,
		Metrics:     kubeletMetrics(s.nodeName, in.pods, in.runtime.Operations, in.collectors...),
		Configz:     s.kubelet,
		Healthz:     in.healthz,
		Profiling:   profiling,
	}, nil
}

// profilingHandler serves Go's profiles under /debug/pprof/, as kubelet
// does with enableProfilingHandler (its default).
func profilingHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// kubeletMetrics serves berth's node-agent metrics at /metrics, with
// kubelet's names where kubelet has them: runtimeOps is
// kubelet_runtime_operations_total; more are other parts' metrics.
func kubeletMetrics(nodeName string, pm *pods.Manager, runtimeOps prometheus.Collector, more ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(pm.Collectors()...)
	reg.MustRegister(runtimeOps)
	reg.MustRegister(more...)
	nodeGauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Subsystem: "kubelet", Name: "node_name", Help: "The node's name. The count is always 1.",
	}, []string{"node"})
	nodeGauge.WithLabelValues(nodeName).Set(1)
	reg.MustRegister(nodeGauge)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
