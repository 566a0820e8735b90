package server

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Well-known user names and groups.
const (
	anonymousUser      = "system:anonymous"
	unauthenticated    = "system:unauthenticated"
	authenticatedGroup = "system:authenticated"
)

// reviewTimeout bounds one TokenReview or SubjectAccessReview: the request
// waiting on it fails rather than hang when the API server does not answer.
const reviewTimeout = 10 * time.Second

// errInvalidToken says a bearer token was presented and rejected: the
// request is refused even where anonymous requests are let in.
var errInvalidToken = errors.New("invalid bearer token")

// userInfo is who a request comes from.
type userInfo struct {
	// Name is the user name.
	Name string
	// UID identifies the user, when the authenticator knows it.
	UID string
	// Groups are the user's groups.
	Groups []string
	// Extra is what else the authenticator says about the user.
	Extra map[string][]string
}

// authenticator tells who a request comes from: a verified client
// certificate, a bearer token the API server vouches for, or, when
// allowed, nobody in particular.
type authenticator struct {
	// roots verify client certificates; nil disables them.
	roots *x509.CertPool
	// client reviews bearer tokens; nil disables them.
	client    kubernetes.Interface
	anonymous bool
	cacheTTL  time.Duration
	clock     clock.PassiveClock
	tokens    *ttlCache[*userInfo]
	inflight  singleflight.Group
}

// newAuthenticator returns the authenticator cfg describes.
func newAuthenticator(cfg *Config) (*authenticator, error) {
	a := &authenticator{
		anonymous: cfg.Authentication.Anonymous,
		cacheTTL:  cfg.Authentication.CacheTTL,
		clock:     cfg.Clock,
		tokens:    newTTLCache[*userInfo](cfg.Clock),
	}
	if cfg.Authentication.Webhook {
		a.client = cfg.Client
	}
	if f := cfg.Authentication.ClientCAFile; f != "" {
		pool, err := loadCAPool(f)
		if err != nil {
			return nil, err
		}
		a.roots = pool
	}
	return a, nil
}

// loadCAPool reads a PEM bundle of certificate authorities.
func loadCAPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("client CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// authenticate tells who r comes from. It returns false without an error
// when r carries no credentials and anonymous requests are not allowed, and
// an error when its credentials were rejected or could not be checked.
// A bearer token it accepts is removed from r, so that the handlers
// behind never see it.
func (a *authenticator) authenticate(r *http.Request) (*userInfo, bool, error) {
	var errs []error
	if u, ok, err := a.fromCertificate(r); ok {
		return u, true, nil
	} else if err != nil {
		errs = append(errs, err)
	}
	if token, ok := bearerToken(r); ok && a.client != nil {
		u, err := a.reviewToken(r.Context(), token)
		switch {
		case err != nil:
			errs = append(errs, err)
		case u == nil:
			errs = append(errs, errInvalidToken)
		default:
			r.Header.Del("Authorization")
			return u, true, nil
		}
	}
	if len(errs) > 0 {
		return nil, false, errors.Join(errs...)
	}
	if a.anonymous {
		return &userInfo{Name: anonymousUser, Groups: []string{unauthenticated}}, true, nil
	}
	return nil, false, nil
}

// fromCertificate authenticates r's client certificate: the user is its
// common name, the groups its organizations.
func (a *authenticator) fromCertificate(r *http.Request) (*userInfo, bool, error) {
	if a.roots == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false, nil
	}
	peers := r.TLS.PeerCertificates
	intermediates := x509.NewCertPool()
	for _, c := range peers[1:] {
		intermediates.AddCert(c)
	}
	// Verified here, not only in the handshake: the handler may be served
	// by a TLS configuration that trusts other authorities.
	_, err := peers[0].Verify(x509.VerifyOptions{
		Roots:         a.roots,
		Intermediates: intermediates,
		CurrentTime:   a.clock.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, false, fmt.Errorf("verify client certificate %q: %w", peers[0].Subject.CommonName, err)
	}
	if peers[0].Subject.CommonName == "" {
		return nil, false, nil
	}
	return &userInfo{
		Name:   peers[0].Subject.CommonName,
		Groups: withAuthenticated(peers[0].Subject.Organization),
	}, true, nil
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// reviewToken asks the API server who token belongs to; nil means nobody.
// Answers are kept for the cache TTL under the token's hash, and concurrent
// requests with the same token share one review.
func (a *authenticator) reviewToken(ctx context.Context, token string) (*userInfo, error) {
	key := sha256.Sum256([]byte(token))
	if u, ok := a.tokens.get(key); ok {
		return u, nil
	}
	v, err, _ := a.inflight.Do(string(key[:]), func() (any, error) {
		// Detached from the first request: the others waiting on the
		// same review must not fail because that one went away.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
		defer cancel()
		review := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}
		got, err := a.client.AuthenticationV1().TokenReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("token review: %w", err)
		}
		var u *userInfo
		if got.Status.Authenticated {
			u = userFromReview(got.Status.User)
		}
		a.tokens.put(key, u, a.cacheTTL)
		return u, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*userInfo), nil
}

func userFromReview(in authnv1.UserInfo) *userInfo {
	u := &userInfo{Name: in.Username, UID: in.UID, Groups: withAuthenticated(in.Groups)}
	if len(in.Extra) > 0 {
		u.Extra = make(map[string][]string, len(in.Extra))
		for k, v := range in.Extra {
			u.Extra[k] = slices.Clone(v)
		}
	}
	return u
}

// withAuthenticated returns groups with system:authenticated, which every
// authenticated user is in, as the API server's authenticators add it.
func withAuthenticated(groups []string) []string {
	out := slices.Clone(groups)
	if !slices.Contains(out, authenticatedGroup) {
		out = append(out, authenticatedGroup)
	}
	return out
}
