package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// Check is one condition of health.
type Check struct {
	// Name names it in the answer.
	Name string
	// Healthy returns nil when healthy, else why not.
	Healthy func() error
}

// Handler answers /healthz from checks.
func Handler(checks []Check) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		var failed []string
		for _, c := range checks {
			if err := c.Healthy(); err != nil {
				failed = append(failed, fmt.Sprintf("[-]%s failed: %v", c.Name, err))
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintln(w, strings.Join(failed, "\n"))
			fmt.Fprintln(w, "healthz check failed")
			return
		}
		fmt.Fprint(w, "ok")
	})
	return mux
}

// Serve serves Handler(checks) on addr until ctx ends.
func Serve(ctx context.Context, addr string, checks []Check) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("health endpoint: %w", err)
	}
	srv := &http.Server{Handler: Handler(checks), ReadHeaderTimeout: 5 * time.Second}
	klog.FromContext(ctx).Info("Serving health endpoint", "address", "http://"+ln.Addr().String()+"/healthz")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("health endpoint: %w", err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("health endpoint shutdown: %w", err)
		}
		return nil
	}
}
