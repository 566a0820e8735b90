package stream

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/go-logr/logr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Handler serves the kubelet's exec, attach and port-forward endpoints by
// proxying them to the container runtime's streaming server.
type Handler struct {
	cfg   Config
	proxy *upgradeProxy
}

// New returns a Handler of the runtime in cfg.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Handler{
		cfg:   cfg,
		proxy: &upgradeProxy{timeout: cfg.HandshakeTimeout, rootCAs: cfg.RootCAs, closeGrace: defaultCloseGrace},
	}, nil
}

// ServeHTTP serves one exec, attach or port-forward session: the request
// must be an upgrade (SPDY or WebSocket), and the response to it is the
// runtime's.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	logger := klog.FromContext(r.Context())
	req, err := parseRequest(r)
	if err != nil {
		h.refuse(w, logger, err)
		return
	}
	logger = logger.WithValues("kind", req.Kind, "pod", klog.KRef(req.Pod.Namespace, req.Pod.Name))
	if req.Pod.UID != "" {
		logger = logger.WithValues("podUID", req.Pod.UID)
	}
	if req.Container != "" {
		logger = logger.WithValues("container", req.Container)
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.HandshakeTimeout)
	target, err := h.streamURL(ctx, req, isUpgrade(r))
	cancel()
	if err != nil {
		h.refuse(w, logger, err)
		return
	}
	start := h.cfg.Clock.Now()
	code, err := h.proxy.serve(w, r, target)
	switch {
	case code == 0:
		h.refuse(w, logger, err)
	case code != http.StatusSwitchingProtocols:
		logger.V(2).Info("Runtime refused the streaming session", "status", code)
	case err != nil:
		logger.Error(err, "Streaming session failed", "duration", h.cfg.Clock.Since(start))
	default:
		logger.V(2).Info("Streaming session ended", "duration", h.cfg.Clock.Since(start))
	}
}

// streamURL finds the sandbox or container of req and asks the runtime for
// the URL of its session. upgrade tells whether the client asked for an
// upgrade; the runtime is not asked for a session without one, which could
// not be served.
func (h *Handler) streamURL(ctx context.Context, req *request, upgrade bool) (*url.URL, error) {
	sb, err := h.findSandbox(ctx, req.Pod)
	if err != nil {
		return nil, err
	}
	var c *runtimeapi.Container
	if req.Kind != kindPortForward {
		if c, err = h.findContainer(ctx, req.Pod, sb, req.Container); err != nil {
			return nil, err
		}
	}
	if !upgrade {
		return nil, withStatus(http.StatusBadRequest, "Upgrade request required")
	}
	var raw string
	switch req.Kind {
	case kindExec:
		resp, err := h.cfg.Runtime.Exec(ctx, &runtimeapi.ExecRequest{
			ContainerId: c.GetId(), Cmd: req.Command, Tty: req.Streams.TTY,
			Stdin: req.Streams.Stdin, Stdout: req.Streams.Stdout, Stderr: req.Streams.Stderr,
		})
		if err != nil {
			return nil, fmt.Errorf("CRI exec in container %s of pod %s: %w", req.Container, req.Pod, err)
		}
		raw = resp.GetUrl()
	case kindAttach:
		resp, err := h.cfg.Runtime.Attach(ctx, &runtimeapi.AttachRequest{
			ContainerId: c.GetId(), Tty: req.Streams.TTY,
			Stdin: req.Streams.Stdin, Stdout: req.Streams.Stdout, Stderr: req.Streams.Stderr,
		})
		if err != nil {
			return nil, fmt.Errorf("CRI attach to container %s of pod %s: %w", req.Container, req.Pod, err)
		}
		raw = resp.GetUrl()
	default:
		resp, err := h.cfg.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb.GetId(), Port: req.Ports})
		if err != nil {
			return nil, fmt.Errorf("CRI port forward to pod %s: %w", req.Pod, err)
		}
		raw = resp.GetUrl()
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the runtime's streaming URL %q for pod %s is not an http(s) URL", raw, req.Pod)
	}
	return u, nil
}

// refuse answers err, the reason a session did not start, and logs it: as
// an error when it is the node's fault, else at V(2).
func (h *Handler) refuse(w http.ResponseWriter, logger logr.Logger, err error) {
	code := httpStatus(err)
	if code >= http.StatusInternalServerError {
		logger.Error(err, "Streaming request failed", "status", code)
	} else {
		logger.V(2).Info("Streaming request refused", "status", code, "reason", err.Error())
	}
	if code == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, POST")
	}
	http.Error(w, err.Error(), code)
}
