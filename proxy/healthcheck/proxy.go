package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// DefaultHealthzAddress is kube-proxy's healthz address.
const DefaultHealthzAddress = "0.0.0.0:10256"

// Status is the proxy's health, as /healthz reports it.
type Status struct {
	// LastUpdated is when the rules were last successfully synced (zero:
	// never).
	LastUpdated time.Time
	// CurrentTime is when the status was taken.
	CurrentTime time.Time
	// Healthy is false when an update has waited for longer than the
	// timeout.
	Healthy bool
}

// Freshness tracks whether the updates the proxy queues get applied in
// time, as kube-proxy's healthz server: the proxy is unhealthy when an
// update has been queued for longer than the timeout (kube-proxy uses twice
// the sync period) without a successful sync since.
type Freshness struct {
	clock   clock.PassiveClock
	timeout time.Duration

	mu           sync.Mutex
	lastUpdated  time.Time
	oldestQueued time.Time
}

// NewFreshness returns a Freshness with the given timeout.
func NewFreshness(timeout time.Duration, clk clock.PassiveClock) *Freshness {
	return &Freshness{clock: clk, timeout: timeout}
}

// QueuedUpdate records that a change is waiting to be synced.
func (f *Freshness) QueuedUpdate() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.oldestQueued.IsZero() {
		f.oldestQueued = f.clock.Now()
	}
}

// Updated records a successful sync of everything queued before it.
func (f *Freshness) Updated() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.oldestQueued = time.Time{}
	f.lastUpdated = f.clock.Now()
}

// Status returns the current health.
func (f *Freshness) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	return Status{
		LastUpdated: f.lastUpdated,
		CurrentTime: now,
		Healthy:     f.oldestQueued.IsZero() || now.Sub(f.oldestQueued) < f.timeout,
	}
}

// Source is what the healthz handler asks: the proxier implements it.
type Source interface {
	// Health returns the proxy's health.
	Health() Status
	// NodeEligible tells whether load balancers may send traffic to this
	// node: false while the Node is unknown, being deleted, or tainted for
	// deletion by the cluster autoscaler.
	NodeEligible() bool
}

// healthBody is kube-proxy's /healthz JSON.
type healthBody struct {
	LastUpdated  time.Time `json:"lastUpdated"`
	CurrentTime  time.Time `json:"currentTime"`
	NodeEligible *bool     `json:"nodeEligible,omitempty"`
	Healthy      bool      `json:"healthy"`
}

// NewHandler returns the handler of /healthz (200 when healthy and the node
// is eligible, else 503) and /livez (200 when healthy), as kube-proxy.
func NewHandler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		st := src.Health()
		eligible := src.NodeEligible()
		writeHealth(w, st, &eligible, st.Healthy && eligible)
	})
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		st := src.Health()
		writeHealth(w, st, nil, st.Healthy)
	})
	return mux
}

func writeHealth(w http.ResponseWriter, st Status, eligible *bool, ok bool) {
	body := healthBody{LastUpdated: st.LastUpdated, CurrentTime: st.CurrentTime, NodeEligible: eligible, Healthy: st.Healthy}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if ok {
		// kube-proxy reports a healthy proxy as updated now: its rules
		// are current.
		body.LastUpdated = st.CurrentTime
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return // cannot happen: the body has only times and bools
	}
	_, _ = w.Write(data)
}

// Serve serves handler on addr until ctx ends. name names the server in
// logs and errors.
func Serve(ctx context.Context, name, addr string, handler http.Handler) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%s server: %w", name, err)
	}
	return serveListener(ctx, name, ln, handler)
}

func serveListener(ctx context.Context, name string, ln net.Listener, handler http.Handler) error {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	klog.FromContext(ctx).Info("Serving", "server", name, "address", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s server: %w", name, err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s server shutdown: %w", name, err)
		}
		return nil
	}
}
