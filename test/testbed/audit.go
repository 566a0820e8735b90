package testbed

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// The apiserver's audit log records every request a node agent makes (the
// kubelets' and kube-proxy's identities), at the Metadata level, so that a
// benchmark can count what an agent asks of the apiserver by verb and
// resource. Both files live in the control plane's /run/berth, inside the
// bed's run folder.
const (
	auditPolicyPath = "/run/berth/audit-policy.yaml"
	auditLogPath    = "/run/berth/audit/audit.log"
)

// auditPolicy logs the metadata of requests from nodes and kube-proxy once
// they complete, and nothing else: the tests' and the control plane's own
// requests would only grow the log.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
  userGroups: ["system:nodes"]
- level: Metadata
  users: ["system:serviceaccount:kube-system:kube-proxy"]
- level: None
`

// writeAuditPolicy writes the audit policy the apiserver is started with.
func (tb *Testbed) writeAuditPolicy() error {
	path, err := tb.HostPath(ControlPlaneHost, auditPolicyPath)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write audit policy: %w", err)
	}
	if err := os.WriteFile(path, []byte(auditPolicy), 0o644); err != nil {
		return fmt.Errorf("write audit policy: %w", err)
	}
	return nil
}

// AuditLog returns where the apiserver's audit log is seen from outside
// the bed.
func (tb *Testbed) AuditLog() string {
	path, _ := tb.HostPath(ControlPlaneHost, auditLogPath) // a bound path: cannot fail
	return path
}

// AuditEvent is the part of an audit event that says who asked what.
type AuditEvent struct {
	// User is the requester's user name, e.g. system:node:node1.
	User string
	// Verb is the request's verb: get, list, watch, create, update,
	// patch, delete.
	Verb string
	// Resource is the resource, with its subresource after a slash
	// (pods/status), or the non-resource URL's path.
	Resource string
	// Code is the response's HTTP status code.
	Code int
}

// ReadAuditEvents reads the events of the audit log at path from byte
// offset on, and returns them with the offset just past the last whole
// line read, where the next read starts.
func ReadAuditEvents(path string, offset int64) ([]AuditEvent, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, offset, fmt.Errorf("read audit log: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, offset, fmt.Errorf("read audit log: %w", err)
	}
	var events []AuditEvent
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			return events, offset, nil // a partial line waits for the next read
		}
		if err != nil {
			return events, offset, fmt.Errorf("read audit log: %w", err)
		}
		offset += int64(len(line))
		ev, err := parseAuditEvent(line)
		if err != nil {
			return events, offset, err
		}
		events = append(events, ev)
	}
}

// parseAuditEvent decodes one line of an audit log (an audit.k8s.io/v1
// Event in JSON).
func parseAuditEvent(line string) (AuditEvent, error) {
	var raw struct {
		Verb       string `json:"verb"`
		RequestURI string `json:"requestURI"`
		User       struct {
			Username string `json:"username"`
		} `json:"user"`
		ObjectRef *struct {
			Resource    string `json:"resource"`
			Subresource string `json:"subresource"`
		} `json:"objectRef"`
		ResponseStatus *struct {
			Code int `json:"code"`
		} `json:"responseStatus"`
	}
	if err := json.Unmarshal([]byte(line), &raw); err != nil {
		return AuditEvent{}, fmt.Errorf("audit event %.200q: %w", line, err)
	}
	ev := AuditEvent{User: raw.User.Username, Verb: raw.Verb}
	switch {
	case raw.ObjectRef != nil && raw.ObjectRef.Subresource != "":
		ev.Resource = raw.ObjectRef.Resource + "/" + raw.ObjectRef.Subresource
	case raw.ObjectRef != nil:
		ev.Resource = raw.ObjectRef.Resource
	default:
		ev.Resource, _, _ = strings.Cut(raw.RequestURI, "?")
	}
	if raw.ResponseStatus != nil {
		ev.Code = raw.ResponseStatus.Code
	}
	return ev, nil
}
