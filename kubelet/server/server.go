package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/util/certificate"
	"k8s.io/klog/v2"
)

// shutdownTimeout bounds how long Run waits for requests in flight when it
// stops; streams still open then are cut.
const shutdownTimeout = 10 * time.Second

// Server serves the kubelet API.
type Server struct {
	cfg       Config
	handler   http.Handler
	tlsConfig *tls.Config
	// manager requests and renews the serving certificate; nil unless
	// TLS.Bootstrap.
	manager certificate.Manager
	// certLog says where the serving certificate comes from, for Run to
	// log.
	certLog []any
}

// New returns the server cfg describes. It reads the client CA bundle and
// the serving certificate, generating a self-signed one when it must; the
// bootstrapped certificate is requested by Run.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kubelet server config: %w", err)
	}
	authn, err := newAuthenticator(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	s.handler = withLogging(withAuth(authn, newAuthorizer(&cfg), routes(cfg.Handlers)))
	source, err := s.certSource()
	if err != nil {
		return nil, err
	}
	s.tlsConfig = &tls.Config{
		MinVersion:     max(cfg.TLS.MinVersion, tls.VersionTLS12),
		GetCertificate: source.GetCertificate,
	}
	if authn.roots != nil {
		s.tlsConfig.ClientCAs = authn.roots
		s.tlsConfig.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return s, nil
}

// certSource returns where the serving certificate comes from: the CSR
// manager, the configured files, or a self-signed pair.
func (s *Server) certSource() (certSource, error) {
	t := &s.cfg.TLS
	switch {
	case t.Bootstrap:
		mgr, err := newServingCertManager(&s.cfg)
		if err != nil {
			return nil, err
		}
		s.manager = mgr
		s.certLog = []any{"source", "CSR " + servingStorePrefix, "dir", t.Dir}
		return managedCert{mgr: mgr}, nil
	case t.CertFile != "":
		f, err := newFileCert(t.CertFile, t.KeyFile, s.cfg.Clock)
		if err != nil {
			return nil, err
		}
		s.certLog = []any{"source", "files", "certFile", t.CertFile, "keyFile", t.KeyFile}
		return f, nil
	default:
		pair, generated, err := selfSigned(t.Dir, t.Hostname, t.IPs, s.cfg.Clock.Now())
		if err != nil {
			return nil, fmt.Errorf("self-signed serving certificate: %w", err)
		}
		s.certLog = []any{"source", "self-signed", "dir", t.Dir, "generated", generated, "notAfter", pair.Leaf.NotAfter.UTC()}
		return staticCert{cert: pair}, nil
	}
}

// Handler returns the kubelet API with its authentication, authorization
// and request logging, to be served over TLS with TLSConfig: a client
// certificate counts only when the connection carries one.
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig returns the server's TLS configuration: the serving certificate
// and the client authorities. The caller must not change it.
func (s *Server) TLSConfig() *tls.Config { return s.tlsConfig }

// Run serves the kubelet API on the configured address until ctx ends, then
// shuts down gracefully. With TLS bootstrap it first starts requesting the
// serving certificate; handshakes fail until one is issued.
func (s *Server) Run(ctx context.Context) error {
	addr := net.JoinHostPort(s.cfg.Address, strconv.Itoa(s.cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("kubelet API: %w", err)
	}
	return s.serve(ctx, ln)
}

// serve serves on ln until ctx ends, and closes ln.
func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	log := klog.FromContext(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.manager != nil {
		s.manager.Start()
		defer s.manager.Stop()
		w := &csrWatcher{mgr: s.manager, client: s.cfg.Client, nodeName: s.cfg.NodeName, clock: s.cfg.Clock}
		var wg sync.WaitGroup
		wg.Go(func() { w.run(ctx) })
		// Runs before the deferred cancel above: stop the watcher first.
		defer wg.Wait()
		defer cancel()
	}
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.tlsConfig,
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    1 << 20,
		// Requests carry the logger, not the cancellation: a shutdown
		// lets the requests in flight finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	log.Info("Serving the kubelet API", append([]any{"address", "https://" + ln.Addr().String()}, s.certLog...)...)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("kubelet API: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Info("Kubelet API requests still running at shutdown, closing them", "err", err)
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("kubelet API: %w", err)
	}
	return nil
}
