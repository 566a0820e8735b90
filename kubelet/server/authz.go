package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The subresources of nodes that access to the kubelet API is checked
// against.
const (
	subresourceProxy   = "proxy"
	subresourceStats   = "stats"
	subresourceMetrics = "metrics"
	subresourceLog     = "log"
	subresourcePods    = "pods"
	subresourceHealthz = "healthz"
	subresourceConfigz = "configz"
	// subresourceCheckpoint is checked for /checkpoint/, which berth does
	// not serve: mapped all the same so that RBAC reads as for kubelet.
	subresourceCheckpoint = "checkpoint"
	subresourceStatusz    = "statusz"
)

// attributes are what a request asks of nodes/<name>: the verb and the
// subresources, any one of which allowing it is enough, in the order they
// are checked.
type attributes struct {
	verb         string
	subresources []string
}

// requestAttributes maps a request to kubelet's authorization attributes.
// The verb follows the HTTP method as for the API. Statistics, metrics and
// node logs have subresources of their own; pods, healthz, configz and
// statusz are checked against their own first and against proxy next (the
// fine-grained authorization that is GA since v1.36, so that roles granting
// only nodes/proxy keep working); everything else, exec and attach and
// container logs included, is proxy.
func requestAttributes(method, urlPath string) attributes {
	a := attributes{verb: apiVerb(method)}
	p := cleanPath(urlPath)
	switch {
	case underPath(p, "/pods"), underPath(p, "/runningpods"):
		a.subresources = append(a.subresources, subresourcePods)
	case underPath(p, "/healthz"):
		a.subresources = append(a.subresources, subresourceHealthz)
	case underPath(p, "/configz"):
		a.subresources = append(a.subresources, subresourceConfigz)
	case underPath(p, "/statusz"):
		a.subresources = append(a.subresources, subresourceStatusz)
	}
	switch {
	case underPath(p, "/stats"):
		a.subresources = append(a.subresources, subresourceStats)
	case underPath(p, "/metrics"):
		a.subresources = append(a.subresources, subresourceMetrics)
	case underPath(p, "/logs"):
		a.subresources = append(a.subresources, subresourceLog)
	case underPath(p, "/checkpoint"):
		a.subresources = append(a.subresources, subresourceCheckpoint)
	default:
		a.subresources = append(a.subresources, subresourceProxy)
	}
	return a
}

// apiVerb is the API verb of an HTTP method; other methods get no verb, and
// so no permission.
func apiVerb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return ""
}

// cleanPath is the path the router serves for p: the authorization check
// must be about the handler that will answer.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// underPath tells whether p is dir or below it.
func underPath(p, dir string) bool {
	rest, ok := strings.CutPrefix(p, dir)
	return ok && (rest == "" || rest[0] == '/')
}

// authorizer decides what a user may do to nodes/<name>.
type authorizer struct {
	// client reviews access; nil allows everything.
	client     kubernetes.Interface
	nodeName   string
	allowedTTL time.Duration
	deniedTTL  time.Duration
	decisions  *ttlCache[bool]
}

func newAuthorizer(cfg *Config) *authorizer {
	a := &authorizer{
		nodeName:   cfg.NodeName,
		allowedTTL: cfg.Authorization.CacheAuthorizedTTL,
		deniedTTL:  cfg.Authorization.CacheUnauthorizedTTL,
		decisions:  newTTLCache[bool](cfg.Clock),
	}
	if cfg.Authorization.Mode == ModeWebhook {
		a.client = cfg.Client
	}
	return a
}

// authorize tells whether u may use verb on nodes/<name>/<subresource>,
// asking the API server with a SubjectAccessReview unless a recent answer
// is kept.
func (a *authorizer) authorize(ctx context.Context, u *userInfo, verb, subresource string) (bool, error) {
	if a.client == nil {
		return true, nil
	}
	key, err := decisionKey(u, verb, subresource)
	if err != nil {
		return false, err
	}
	if allowed, ok := a.decisions.get(key); ok {
		return allowed, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reviewTimeout)
	defer cancel()
	review := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		ResourceAttributes: &authzv1.ResourceAttributes{
			Verb:        verb,
			Version:     "v1",
			Resource:    "nodes",
			Subresource: subresource,
			Name:        a.nodeName,
		},
		User:   u.Name,
		UID:    u.UID,
		Groups: u.Groups,
		Extra:  extraValues(u.Extra),
	}}
	got, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	allowed := got.Status.Allowed && !got.Status.Denied
	ttl := a.deniedTTL
	if allowed {
		ttl = a.allowedTTL
	}
	a.decisions.put(key, allowed, ttl)
	return allowed, nil
}

// decisionKey hashes everything an access review depends on.
func decisionKey(u *userInfo, verb, subresource string) ([32]byte, error) {
	// json.Marshal sorts map keys: the same question hashes the same.
	data, err := json.Marshal(struct {
		User        *userInfo
		Verb        string
		Subresource string
	}{u, verb, subresource})
	if err != nil {
		return [32]byte{}, fmt.Errorf("decision cache key: %w", err)
	}
	return sha256.Sum256(data), nil
}

func extraValues(in map[string][]string) map[string]authzv1.ExtraValue {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]authzv1.ExtraValue, len(in))
	for k, v := range in {
		out[k] = authzv1.ExtraValue(v)
	}
	return out
}
