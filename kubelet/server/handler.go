package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// routes returns the router of the kubelet API's endpoints; a nil handler
// leaves its paths to the router's 404.
func routes(h Handlers) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", getOnly(healthzHandler(h.Healthz)))
	if h.Pods != nil {
		mux.Handle("/pods", getOnly(podsHandler(h.Pods)))
	}
	if h.Configz != nil {
		mux.Handle("/configz", getOnly(configzHandler(h.Configz)))
	}
	mount := func(handler http.Handler, patterns ...string) {
		if handler == nil {
			return
		}
		for _, p := range patterns {
			mux.Handle(p, handler)
		}
	}
	mount(h.RunningPods, "/runningpods/")
	mount(h.Logs, "/containerLogs/")
	mount(h.Streaming, "/exec/", "/attach/", "/portForward/", "/run/")
	mount(h.Stats, "/stats/", "/metrics/resource")
	mount(h.Metrics, "/metrics")
	mount(h.Profiling, "/debug/pprof/")
	return mux
}

// getOnly refuses the methods other than GET and HEAD.
func getOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeText(w, http.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func healthzHandler(healthy func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if healthy != nil {
			if err := healthy(); err != nil {
				klog.FromContext(r.Context()).V(2).Info("Health check failed", "err", err)
				writeText(w, http.StatusInternalServerError, fmt.Sprintf("healthz check failed: %v\n", err))
				return
			}
		}
		writeText(w, http.StatusOK, "ok")
	}
}

// podsHandler answers a PodList of the pods bound to this node.
func podsHandler(pods func() []*v1.Pod) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		list := v1.PodList{
			TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
			Items:    []v1.Pod{},
		}
		for _, p := range pods() {
			if p != nil {
				list.Items = append(list.Items, *p)
			}
		}
		writeJSON(w, r, list)
	}
}

// configzHandler answers the configuration the way kubelet's configz does:
// one object keyed by the configuration's name.
func configzHandler(cfg any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, r, map[string]any{"kubeletconfig": cfg})
	}
}

func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		klog.FromContext(r.Context()).Error(err, "Encode response", "path", r.URL.Path)
		writeText(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// writeText answers msg as is: kubelet's errors carry nothing else.
func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

// withAuth lets a request through to next only when it is authenticated and
// authorized.
func withAuth(authn *authenticator, authz *authorizer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := klog.FromContext(r.Context())
		u, ok, err := authn.authenticate(r)
		if err != nil {
			log.V(2).Info("Unable to authenticate the request", "path", r.URL.Path, "err", err)
		}
		if !ok {
			writeText(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		if rec, ok := r.Context().Value(requestRecordKey{}).(*requestRecord); ok {
			rec.user = u.Name
		}
		attrs := requestAttributes(r.Method, r.URL.Path)
		for _, sub := range attrs.subresources {
			allowed, err := authz.authorize(r.Context(), u, attrs.verb, sub)
			if err != nil {
				log.Error(err, "Authorization error", "user", u.Name, "verb", attrs.verb, "resource", "nodes", "subresource", sub)
				writeText(w, http.StatusInternalServerError, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource=%s)", u.Name, attrs.verb, sub))
				return
			}
			if allowed {
				next.ServeHTTP(w, r)
				return
			}
		}
		log.V(2).Info("Forbidden", "user", u.Name, "verb", attrs.verb, "resource", "nodes", "subresources", attrs.subresources)
		writeText(w, http.StatusForbidden, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=%v)\n", u.Name, attrs.verb, attrs.subresources))
	})
}

// requestRecordKey keys the requestRecord in a request's context.
type requestRecordKey struct{}

// requestRecord collects what the request log says about a request.
type requestRecord struct {
	user string
}

// withLogging logs every request at V(4): user, method, path, status.
func withLogging(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log := klog.FromContext(r.Context())
		if !log.V(4).Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &requestRecord{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestRecordKey{}, rec)))
		log.V(4).Info("Kubelet API request", "user", rec.user, "method", r.Method, "path", r.URL.Path,
			"status", sw.statusCode(), "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}

// statusWriter remembers the status a handler answers, and lets streaming
// handlers flush and take over the connection as they would without it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush flushes the response, when the connection can.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hands the connection over (exec, attach and port forwarding
// upgrade it).
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	conn, rw, err := h.Hijack()
	if err == nil && s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

// Unwrap gives http.ResponseController the writer underneath.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) statusCode() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
