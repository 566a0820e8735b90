package logs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// PathPrefix is where the Handler is mounted; it serves the whole path
// PathPrefix{podNamespace}/{podID}/{containerName}, so it must be mounted
// without stripping the prefix.
const PathPrefix = "/containerLogs/"

// DefaultPollInterval is how often a followed log is checked for new data.
const DefaultPollInterval = 100 * time.Millisecond

// HandlerConfig configures the Handler.
type HandlerConfig struct {
	// Runtime is the CRI runtime service that runs the containers.
	Runtime internalapi.RuntimeService
	// Clock tells the time and ticks while following; nil means the real
	// clock.
	Clock clock.WithTicker
	// PollInterval is how often a followed log is checked for new data;
	// zero means DefaultPollInterval.
	PollInterval time.Duration
}

// Validate reports every problem of c.
func (c *HandlerConfig) Validate() error {
	var errs []error
	if c.Runtime == nil {
		errs = append(errs, errors.New("runtime: required"))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("poll interval %v: must not be negative", c.PollInterval))
	}
	return errors.Join(errs...)
}

// Handler serves container logs; see the package documentation. It does no
// authentication or authorization of its own: it is mounted behind them.
type Handler struct {
	cfg HandlerConfig
}

// NewHandler returns a Handler for cfg.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("container logs handler config: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	return &Handler{cfg: cfg}, nil
}

// ServeHTTP answers GET PathPrefix{podNamespace}/{podID}/{containerName}.
// Errors are plain text, with the kubelet's status codes: 400 for a missing
// path part, an undecodable query or a container without logs to show, 422
// for invalid options, 404 for a pod that does not exist.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ns, pod, container, err := splitPath(req.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	opts, err := ParseQuery(req.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := ValidateOptions(opts); err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	ctx := req.Context()
	log := klog.FromContext(ctx).WithValues("pod", klog.KRef(ns, pod), "container", container)
	ctx = klog.NewContext(ctx, log)
	target, err := findContainer(ctx, h.cfg.Runtime, ns, pod, container, opts.Previous)
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	rc := http.NewResponseController(w)
	flush := func() {
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			log.V(4).Info("Flushing container log failed", "err", err)
		}
	}
	r := &reader{
		src: source{path: target.logPath, running: func(ctx context.Context) (bool, error) {
			return containerRunning(ctx, h.cfg.Runtime, target.id)
		}},
		opts:     resolve(opts, h.cfg.Clock.Now()),
		flush:    flush,
		clock:    h.cfg.Clock,
		interval: h.cfg.PollInterval,
		log:      log,
	}
	f, err := r.open()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	r.out = newOutput(w, r.opts)
	r.asm = &assembler{out: r.out}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	// The client learns at once that the stream began, before any line.
	flush()
	if err := r.run(ctx, f); err != nil {
		log.V(2).Info("Serving container log ended early", "containerID", target.id, "err", err)
	}
}

// splitPath returns the namespace, pod name and container name of a path
// PathPrefix{podNamespace}/{podID}/{containerName}.
func splitPath(p string) (ns, pod, container string, err error) {
	rest, ok := strings.CutPrefix(p, PathPrefix)
	if !ok {
		return "", "", "", fmt.Errorf("path %q: not below %s", p, PathPrefix)
	}
	parts := strings.Split(rest, "/")
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	switch {
	case len(parts) > 3:
		return "", "", "", fmt.Errorf("path %q: want %s{podNamespace}/{podID}/{containerName}", p, PathPrefix)
	case parts[0] == "":
		return "", "", "", errors.New("missing podNamespace")
	case parts[1] == "":
		return "", "", "", errors.New("missing podID")
	case parts[2] == "":
		return "", "", "", errors.New("missing container name")
	}
	return parts[0], parts[1], parts[2], nil
}
