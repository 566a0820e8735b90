package stream

import (
	"net/http"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// The kinds of streaming endpoint, the first segment of their paths.
const (
	kindExec        = "exec"
	kindAttach      = "attach"
	kindPortForward = "portForward"
)

// podRef names a pod the way the request path does.
type podRef struct {
	Namespace string
	Name      string
	// UID is the pod's UID, empty when the path has none.
	UID string
}

func (p podRef) String() string { return p.Namespace + "/" + p.Name }

// streamOptions are the streams of an exec or attach session.
type streamOptions struct {
	Stdin  bool
	Stdout bool
	Stderr bool
	TTY    bool
}

// request is one parsed streaming request.
type request struct {
	// Kind is kindExec, kindAttach or kindPortForward.
	Kind string
	Pod  podRef
	// Container is the container's name; empty for port forwarding.
	Container string
	// Command is what exec runs.
	Command []string
	// Streams are the streams of exec and attach.
	Streams streamOptions
	// Ports are port forwarding's ports given in the query; the SPDY
	// protocol names them in its streams instead.
	Ports []int32
}

// parseRequest reads the endpoint, the pod, the container and the options
// from the path and query of r.
func parseRequest(r *http.Request) (*request, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, withStatus(http.StatusMethodNotAllowed, "method %s is not allowed", r.Method)
	}
	req, err := parsePath(r.URL.Path)
	if err != nil {
		return nil, err
	}
	query := r.URL.Query()
	switch req.Kind {
	case kindExec, kindAttach:
		if req.Streams, err = parseStreams(query); err != nil {
			return nil, err
		}
		if req.Kind == kindExec {
			req.Command = query[v1.ExecCommandParam]
			if len(req.Command) == 0 {
				return nil, withStatus(http.StatusBadRequest, "no command to execute: the %q parameter is missing", v1.ExecCommandParam)
			}
		}
	case kindPortForward:
		if req.Ports, err = parsePorts(query[v1.PortHeader]); err != nil {
			return nil, err
		}
		// SPDY names the ports in its streams; WebSocket has no such
		// streams, so the runtime needs them in the CRI request.
		if len(req.Ports) == 0 && isWebSocket(r) {
			return nil, withStatus(http.StatusBadRequest, "query parameter %q is required", v1.PortHeader)
		}
	}
	return req, nil
}

// parsePath splits a streaming path into its kind, pod and container. The
// uid segment is optional: /kind/namespace/pod[/uid][/container].
func parsePath(path string) (*request, error) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for _, p := range parts {
		if p == "" {
			return nil, withStatus(http.StatusNotFound, "no streaming endpoint at %q", path)
		}
	}
	req := &request{Kind: parts[0]}
	switch {
	case (req.Kind == kindExec || req.Kind == kindAttach) && (len(parts) == 4 || len(parts) == 5):
		req.Container = parts[len(parts)-1]
		parts = parts[:len(parts)-1]
	case req.Kind == kindPortForward && (len(parts) == 3 || len(parts) == 4):
	default:
		return nil, withStatus(http.StatusNotFound, "no streaming endpoint at %q", path)
	}
	req.Pod = podRef{Namespace: parts[1], Name: parts[2]}
	if len(parts) == 4 {
		req.Pod.UID = parts[3]
	}
	return req, nil
}

// parseStreams reads which streams the client wants. The apiserver names
// them input, output and error with the value "1"; a client talking to the
// kubelet directly may use the names of PodExecOptions (stdin, stdout,
// stderr) with a boolean.
func parseStreams(query map[string][]string) (streamOptions, error) {
	o := streamOptions{
		Stdin:  flag(query, v1.ExecStdinParam, "stdin"),
		Stdout: flag(query, v1.ExecStdoutParam, "stdout"),
		Stderr: flag(query, v1.ExecStderrParam, "stderr"),
		TTY:    flag(query, v1.ExecTTYParam),
	}
	if o.TTY {
		// A terminal merges stderr into stdout; CRI refuses both at once.
		o.Stderr = false
	}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		return o, withStatus(http.StatusBadRequest, "you must specify at least 1 of stdin, stdout, stderr")
	}
	return o, nil
}

// flag tells whether the first value of any of the names is true ("1" or
// "true").
func flag(query map[string][]string, names ...string) bool {
	for _, n := range names {
		if v := query[n]; len(v) > 0 {
			if b, err := strconv.ParseBool(v[0]); err == nil && b {
				return true
			}
		}
	}
	return false
}

// parsePorts parses the port query values; each may list ports separated by
// commas, as the WebSocket port forwarding protocol allows.
func parsePorts(values []string) ([]int32, error) {
	var ports []int32
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			p, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
			if err != nil || p == 0 {
				return nil, withStatus(http.StatusBadRequest, "invalid port %q", s)
			}
			ports = append(ports, int32(p))
		}
	}
	return ports, nil
}
