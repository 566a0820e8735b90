package volume

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"time"

	"github.com/berthnode/berth/kubelet/volume/atomicwriter"
	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
)

// defaultTokenExpiration is what the apiserver grants a token request
// without expirationSeconds; used when its answer does not say.
const defaultTokenExpiration = time.Hour

// projected sets up a projected volume on a tmpfs: the kube-api-access-*
// volume the apiserver adds to nearly every pod is one (token, ca.crt from
// the kube-root-ca.crt configMap, namespace from the downward API).
func (s *podSetup) projected(ctx context.Context, name string, src *v1.ProjectedVolumeSource) (string, error) {
	mode := fileMode(src.DefaultMode, defaultFileMode)
	payload := map[string]atomicwriter.File{}
	var errs []error
	for i := range src.Sources {
		source := &src.Sources[i]
		var part map[string]atomicwriter.File
		var err error
		switch {
		case source.ServiceAccountToken != nil:
			part, err = s.tokenPayload(ctx, name, source.ServiceAccountToken, mode)
		case source.ConfigMap != nil:
			part, err = s.configMapPayload(ctx, source.ConfigMap.Name, source.ConfigMap.Items, isTrue(source.ConfigMap.Optional), mode)
		case source.Secret != nil:
			part, err = s.secretPayload(ctx, source.Secret.Name, source.Secret.Items, isTrue(source.Secret.Optional), mode)
		case source.DownwardAPI != nil:
			part, err = s.downwardAPIPayload(ctx, source.DownwardAPI.Items, mode)
		default:
			err = &UnsupportedError{Type: "projected " + setField(source)}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		maps.Copy(payload, part)
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return s.publish(ctx, pluginProjected, name, true, payload)
}

// tokenPayload returns the service account token file of a projection,
// reusing the token written before until it is due for renewal.
func (s *podSetup) tokenPayload(ctx context.Context, volume string, src *v1.ServiceAccountTokenProjection, mode os.FileMode) (map[string]atomicwriter.File, error) {
	key := tokenKey{volume: volume, path: src.Path}
	tok, ok := s.m.tokens.get(s.pod.UID, key, s.m.cfg.Clock.Now())
	if !ok {
		var err error
		tok, err = s.requestToken(ctx, src)
		if err != nil {
			return nil, err
		}
		s.m.tokens.put(s.pod.UID, key, tok)
		klog.FromContext(ctx).V(3).Info("Got service account token", "path", src.Path, "expires", tok.expires, "refreshAt", tok.refreshAt)
	}
	// With a single user or an fsGroup to give the token to, nobody else
	// needs to read it: applyFSGroup adds group read.
	uid := podFSUser(s.pod)
	if uid != nil || podFSGroup(s.pod) != nil {
		mode = 0o600
	}
	return map[string]atomicwriter.File{src.Path: {Data: []byte(tok.token), Mode: mode, UID: uid}}, nil
}

// tokenRetryBackoff is the waits before asking again for the token of a
// pod the API server does not know yet: 50 ms doubling, five times (1.55 s
// in all).
var tokenRetryBackoff = wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Steps: 5}

// podNotKnownYet tells whether a TokenRequest failed because the API
// server does not know yet that the pod is bound to this node. Two of its
// caches lag behind the watch berth saw the pod on, under load: the
// NodeRestriction admission plugin's pod lister (NotFound for the pod) and
// the node authorizer's graph (Forbidden: "no relationship found between
// node and this object"). Under a burst of 100 pods on the 2-CPU test bed
// a few of the newest got either answer for up to a second; the kubelet
// meets the same race (kubernetes/kubernetes#104108) and retries through
// its volume manager's back-off. The sync's own retry would wait one
// second, then two, and report a failed mount; a few quick tries do
// better. A missing service account, the other NotFound, is not retried;
// a node denied tokens for good costs the few tries, then fails as before.
func podNotKnownYet(err error) bool {
	if apierrors.IsForbidden(err) {
		return true
	}
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) || status.Status().Details == nil {
		return false
	}
	kind := status.Status().Details.Kind
	return kind == "pod" || kind == "pods"
}

// requestToken asks the apiserver for a token of the pod's service account
// bound to the pod, which the NodeRestriction admission plugin allows a
// node to do for the pods bound to it.
func (s *podSetup) requestToken(ctx context.Context, src *v1.ServiceAccountTokenProjection) (issuedToken, error) {
	sa := s.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	var audiences []string
	if src.Audience != "" {
		audiences = []string{src.Audience}
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		Audiences:         audiences,
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef: &authv1.BoundObjectReference{
			APIVersion: "v1",
			Kind:       "Pod",
			Name:       s.pod.Name,
			UID:        s.pod.UID,
		},
	}}
	var resp *authv1.TokenRequest
	var err error
	var now time.Time
	// The waits are on the injected clock, which tests replace; Step
	// counts the retries down.
	backoff := tokenRetryBackoff
	for {
		now = s.m.cfg.Clock.Now()
		resp, err = s.m.cfg.Client.CoreV1().ServiceAccounts(s.pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
		if err == nil || !podNotKnownYet(err) || backoff.Steps == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return issuedToken{}, ctx.Err()
		case <-s.m.cfg.Clock.After(backoff.Step()):
		}
	}
	if err != nil {
		return issuedToken{}, fmt.Errorf("request token for service account %q: %w", sa, err)
	}
	if resp.Status.Token == "" {
		return issuedToken{}, fmt.Errorf("request token for service account %q: empty token in the answer", sa)
	}
	return newIssuedToken(resp, now), nil
}

// newIssuedToken derives a token's lifetime from the apiserver's answer the
// way the kubelet does: issued at expiry minus the granted seconds, so that
// renewal follows the apiserver's clock. Missing fields fall back to the
// local clock and the default lifetime.
func newIssuedToken(resp *authv1.TokenRequest, now time.Time) issuedToken {
	ttl := defaultTokenExpiration
	if resp.Spec.ExpirationSeconds != nil && *resp.Spec.ExpirationSeconds > 0 {
		ttl = time.Duration(*resp.Spec.ExpirationSeconds) * time.Second
	}
	expires := resp.Status.ExpirationTimestamp.Time
	if expires.IsZero() {
		expires = now.Add(ttl)
	}
	issued := expires.Add(-ttl)
	return issuedToken{token: resp.Status.Token, expires: expires, refreshAt: refreshTime(issued, expires)}
}
