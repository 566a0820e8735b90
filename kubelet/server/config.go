package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/clock"
)

// Authorization modes the kubelet API understands.
const (
	// ModeWebhook asks the API server with a SubjectAccessReview.
	ModeWebhook = string(kubeletv1beta1.KubeletAuthorizationModeWebhook)
	// ModeAlwaysAllow lets every authenticated request through.
	ModeAlwaysAllow = string(kubeletv1beta1.KubeletAuthorizationModeAlwaysAllow)
)

// Config says how to serve the kubelet API. FromKubeletConfiguration fills
// what the KubeletConfiguration file sets; the caller adds the node, the
// client, the clock and the handlers.
type Config struct {
	// Address is the IP address to listen on ("0.0.0.0" for all).
	Address string
	// Port is the TCP port to listen on (10250).
	Port int
	// NodeName names this node: authorization checks are about
	// nodes/<NodeName>, and a bootstrapped serving certificate is for
	// system:node:<NodeName>.
	NodeName string
	// TLS says where the serving certificate comes from.
	TLS ServingCert
	// Authentication says who may be recognised, and how.
	Authentication Authentication
	// Authorization says what a recognised user may do.
	Authorization Authorization
	// Client talks to the API server with the node's credentials: token
	// reviews, access reviews and certificate signing requests. It may be
	// nil only when none of those is configured.
	Client kubernetes.Interface
	// Clock tells the time: cache expiry, certificate validity.
	Clock clock.WithTicker
	// Handlers serve the endpoints behind authentication and
	// authorization.
	Handlers Handlers
}

// ServingCert says where the kubelet API's serving certificate comes from:
// a CSR to the API server when Bootstrap is set; else CertFile and KeyFile
// when both are set; else a self-signed pair generated once in Dir.
type ServingCert struct {
	// Dir holds kubelet.crt and kubelet.key (self-signed) or the
	// kubelet-server-*.pem pairs (bootstrap): the kubelet's --cert-dir,
	// /var/lib/kubelet/pki.
	Dir string
	// CertFile is the configured certificate (tlsCertFile), reloaded when
	// it changes on disk.
	CertFile string
	// KeyFile is the configured private key (tlsPrivateKeyFile).
	KeyFile string
	// Bootstrap requests the certificate from the cluster with a
	// kubernetes.io/kubelet-serving CSR and rotates it before it expires
	// (serverTLSBootstrap).
	Bootstrap bool
	// Hostname is put in the certificate as a DNS name.
	Hostname string
	// IPs are the node's addresses, put in the certificate.
	IPs []net.IP
	// MinVersion is the lowest TLS version accepted; 0 means TLS 1.2,
	// below which nothing is accepted.
	MinVersion uint16
}

// Authentication says how requests are authenticated.
type Authentication struct {
	// ClientCAFile is a PEM bundle of the authorities whose client
	// certificates are accepted (authentication.x509.clientCAFile); empty
	// disables client certificate authentication.
	ClientCAFile string
	// Webhook accepts bearer tokens, checked with a TokenReview
	// (authentication.webhook.enabled).
	Webhook bool
	// CacheTTL is how long a token review's answer is kept
	// (authentication.webhook.cacheTTL).
	CacheTTL time.Duration
	// Anonymous lets requests without credentials in as system:anonymous
	// (authentication.anonymous.enabled).
	Anonymous bool
}

// Authorization says how authenticated requests are authorized.
type Authorization struct {
	// Mode is ModeWebhook or ModeAlwaysAllow (authorization.mode).
	Mode string
	// CacheAuthorizedTTL is how long an allowed decision is kept
	// (authorization.webhook.cacheAuthorizedTTL).
	CacheAuthorizedTTL time.Duration
	// CacheUnauthorizedTTL is how long a denied decision is kept
	// (authorization.webhook.cacheUnauthorizedTTL).
	CacheUnauthorizedTTL time.Duration
}

// Handlers serve the kubelet API's endpoints; a nil one makes its paths
// answer 404.
type Handlers struct {
	// Pods lists the pods bound to this node as berth knows them, for
	// /pods. The pods are only read, and must not change while they are
	// encoded.
	Pods func() []*v1.Pod
	// RunningPods serves /runningpods/.
	RunningPods http.Handler
	// Logs serves /containerLogs/.
	Logs http.Handler
	// Streaming serves /exec/, /attach/, /portForward/ and /run/.
	Streaming http.Handler
	// Stats serves /stats/ and /metrics/resource.
	Stats http.Handler
	// Metrics serves /metrics.
	Metrics http.Handler
	// Profiling serves /debug/pprof/ (kubelet's enableProfilingHandler);
	// authorized as nodes/proxy.
	Profiling http.Handler
	// Configz is the configuration /configz shows, as
	// {"kubeletconfig": Configz}.
	Configz any
	// Healthz reports the node agent's health for /healthz; nil means
	// always healthy.
	Healthz func() error
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if net.ParseIP(c.Address) == nil {
		errs = append(errs, fmt.Errorf("address %q: not an IP address", c.Address))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: not in 1-65535", c.Port))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name: required"))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("clock: required"))
	}
	errs = append(errs, c.TLS.validate(c.Client != nil))
	if c.Authentication.Webhook && c.Client == nil {
		errs = append(errs, errors.New("authentication webhook: needs a client"))
	}
	if c.Authentication.CacheTTL < 0 {
		errs = append(errs, fmt.Errorf("authentication cache TTL %s: negative", c.Authentication.CacheTTL))
	}
	errs = append(errs, c.Authorization.validate(c.Client != nil))
	return errors.Join(errs...)
}

func (t *ServingCert) validate(haveClient bool) error {
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("TLS: certificate and key files go together"))
	}
	fromFiles := t.CertFile != "" && !t.Bootstrap
	if !fromFiles && !filepath.IsAbs(t.Dir) {
		errs = append(errs, fmt.Errorf("TLS certificate directory %q: must be an absolute path", t.Dir))
	}
	if t.Bootstrap && !haveClient {
		errs = append(errs, errors.New("TLS bootstrap: needs a client"))
	}
	if !fromFiles && t.Hostname == "" && len(t.IPs) == 0 {
		errs = append(errs, errors.New("TLS: a hostname or an IP address is needed for the certificate"))
	}
	if t.MinVersion != 0 && t.MinVersion < tls.VersionTLS12 {
		errs = append(errs, fmt.Errorf("TLS minimum version %s: below TLS 1.2", tls.VersionName(t.MinVersion)))
	}
	return errors.Join(errs...)
}

func (a *Authorization) validate(haveClient bool) error {
	var errs []error
	switch a.Mode {
	case ModeWebhook:
		if !haveClient {
			errs = append(errs, errors.New("authorization webhook: needs a client"))
		}
	case ModeAlwaysAllow:
	default:
		errs = append(errs, fmt.Errorf("authorization mode %q: want %s or %s", a.Mode, ModeWebhook, ModeAlwaysAllow))
	}
	if a.CacheAuthorizedTTL < 0 || a.CacheUnauthorizedTTL < 0 {
		errs = append(errs, errors.New("authorization cache TTLs: negative"))
	}
	return errors.Join(errs...)
}

// Upstream's defaults for what a KubeletConfiguration file leaves unset.
const (
	defaultAddress              = "0.0.0.0"
	defaultPort                 = 10250
	defaultTokenCacheTTL        = 2 * time.Minute
	defaultAuthorizedCacheTTL   = 5 * time.Minute
	defaultUnauthorizedCacheTTL = 30 * time.Second
)

// FromKubeletConfiguration returns the Config that kc describes: address
// and port, TLS files, minimum version and bootstrap, authentication and
// authorization, with upstream's defaults for what kc leaves unset
// (anonymous off, token webhook on, Webhook authorization). The caller fills
// NodeName, Client, Clock, Handlers and TLS.Dir, Hostname and IPs.
func FromKubeletConfiguration(kc *kubeletv1beta1.KubeletConfiguration) (Config, error) {
	c := Config{
		Address: kc.Address,
		Port:    int(kc.Port),
		TLS: ServingCert{
			CertFile:  kc.TLSCertFile,
			KeyFile:   kc.TLSPrivateKeyFile,
			Bootstrap: kc.ServerTLSBootstrap,
		},
	}
	if c.Address == "" {
		c.Address = defaultAddress
	}
	if c.Port == 0 {
		c.Port = defaultPort
	}
	switch kc.TLSMinVersion {
	case "", "VersionTLS12":
		c.TLS.MinVersion = tls.VersionTLS12
	case "VersionTLS13":
		c.TLS.MinVersion = tls.VersionTLS13
	default:
		return Config{}, fmt.Errorf("tlsMinVersion %q: want VersionTLS12 or VersionTLS13", kc.TLSMinVersion)
	}
	authn := kc.Authentication
	c.Authentication = Authentication{
		ClientCAFile: authn.X509.ClientCAFile,
		Webhook:      authn.Webhook.Enabled == nil || *authn.Webhook.Enabled,
		CacheTTL:     orDefault(authn.Webhook.CacheTTL.Duration, defaultTokenCacheTTL),
		Anonymous:    authn.Anonymous.Enabled != nil && *authn.Anonymous.Enabled,
	}
	authz := kc.Authorization
	c.Authorization = Authorization{
		Mode:                 string(authz.Mode),
		CacheAuthorizedTTL:   orDefault(authz.Webhook.CacheAuthorizedTTL.Duration, defaultAuthorizedCacheTTL),
		CacheUnauthorizedTTL: orDefault(authz.Webhook.CacheUnauthorizedTTL.Duration, defaultUnauthorizedCacheTTL),
	}
	if c.Authorization.Mode == "" {
		c.Authorization.Mode = ModeWebhook
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
