package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
)

// ServiceServerConfig configures a ServiceServer.
type ServiceServerConfig struct {
	// BindIP is the address the health-check node ports listen on; default
	// "0.0.0.0", as kube-proxy when nodePortAddresses match everything.
	BindIP string
	// Listen opens a listener; default net.ListenConfig.Listen. Tests
	// replace it.
	Listen func(ctx context.Context, network, address string) (net.Listener, error)
	// ProxyHealthy tells whether the proxy itself is healthy; a health
	// check answers 503 when it is not. Default: always healthy.
	ProxyHealthy func() bool
	// Recorder, if set, gets a Warning Event on the Service when its
	// health-check port cannot be opened.
	Recorder record.EventRecorder
}

// ServiceServer serves the health-check node ports of the
// externalTrafficPolicy: Local load-balancer services: one HTTP server per
// port, opened and closed as services come and go. A load balancer probes
// it to send traffic only to nodes that have local endpoints.
type ServiceServer struct {
	cfg ServiceServerConfig

	mu       sync.Mutex
	services map[types.NamespacedName]*hcInstance
}

// hcInstance is the health check of one service.
type hcInstance struct {
	port uint16
	srv  *http.Server
	// endpoints is the number of ready local endpoints (guarded by the
	// server's mutex).
	endpoints int
}

// NewServiceServer returns a ServiceServer with no ports open.
func NewServiceServer(cfg ServiceServerConfig) *ServiceServer {
	if cfg.BindIP == "" {
		cfg.BindIP = "0.0.0.0"
	}
	if cfg.Listen == nil {
		var lc net.ListenConfig
		cfg.Listen = lc.Listen
	}
	if cfg.ProxyHealthy == nil {
		cfg.ProxyHealthy = func() bool { return true }
	}
	return &ServiceServer{cfg: cfg, services: map[types.NamespacedName]*hcInstance{}}
}

// SyncServices makes the open health-check ports match ports (service to
// its healthCheckNodePort): it closes the ports of services that are gone
// or moved and opens new ones. A port that cannot be opened is reported
// (and retried on the next call); the others are still served.
func (s *ServiceServer) SyncServices(ctx context.Context, ports map[types.NamespacedName]uint16) error {
	logger := klog.FromContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, hc := range s.services {
		if port, ok := ports[name]; !ok || port != hc.port {
			logger.V(2).Info("Closing health check", "service", name, "port", hc.port)
			_ = hc.srv.Close()
			delete(s.services, name)
		}
	}
	var errs []error
	for name, port := range ports {
		if s.services[name] != nil {
			continue
		}
		hc, err := s.open(ctx, name, port)
		if err != nil {
			errs = append(errs, err)
			s.recordFailure(name, err)
			continue
		}
		logger.V(2).Info("Opened health check", "service", name, "port", port)
		s.services[name] = hc
	}
	return errors.Join(errs...)
}

func (s *ServiceServer) open(ctx context.Context, name types.NamespacedName, port uint16) (*hcInstance, error) {
	addr := net.JoinHostPort(s.cfg.BindIP, strconv.Itoa(int(port)))
	ln, err := s.cfg.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health check of service %s on %s: %w", name, addr, err)
	}
	hc := &hcInstance{port: port}
	hc.srv = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { s.serve(w, name, hc) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	logger := klog.FromContext(ctx)
	go func() {
		if err := hc.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Health check server stopped", "service", name, "port", port)
		}
	}()
	return hc, nil
}

func (s *ServiceServer) recordFailure(name types.NamespacedName, err error) {
	if s.cfg.Recorder == nil {
		return
	}
	ref := &v1.ObjectReference{APIVersion: "v1", Kind: "Service", Namespace: name.Namespace, Name: name.Name}
	s.cfg.Recorder.Eventf(ref, v1.EventTypeWarning, "FailedToStartServiceHealthcheck", "%v", err)
}

// SyncEndpoints sets the number of ready local endpoints of each service;
// services not in counts have none.
func (s *ServiceServer) SyncEndpoints(counts map[types.NamespacedName]int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, hc := range s.services {
		hc.endpoints = counts[name]
	}
	return nil
}

// Close closes every health-check port.
func (s *ServiceServer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name, hc := range s.services {
		if err := hc.srv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close health check of %s: %w", name, err))
		}
		delete(s.services, name)
	}
	return errors.Join(errs...)
}

// serve answers a probe with kube-proxy's body: 200 when the node has local
// endpoints and the proxy is healthy, 503 otherwise.
func (s *ServiceServer) serve(w http.ResponseWriter, name types.NamespacedName, hc *hcInstance) {
	s.mu.Lock()
	count := hc.endpoints
	s.mu.Unlock()
	healthy := s.cfg.ProxyHealthy()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(count))
	if count > 0 && healthy {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	body := serviceBody{LocalEndpoints: count, ServiceProxyHealthy: healthy}
	body.Service.Namespace, body.Service.Name = name.Namespace, name.Name
	data, err := json.MarshalIndent(body, "", "\t")
	if err != nil {
		return // cannot happen: strings, an int and a bool
	}
	_, _ = w.Write(data)
}

// serviceBody is kube-proxy's health-check answer.
type serviceBody struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}
