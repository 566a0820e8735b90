package join

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"
)

// Defaults of Config's durations, kubeadm's.
const (
	// DefaultTimeout bounds each wait for the API server (kubeadm's
	// discovery timeout).
	DefaultTimeout = 5 * time.Minute
	// DefaultRetryInterval is the longest pause between two attempts
	// (kubeadm's discovery retry interval).
	DefaultRetryInterval = 5 * time.Second
)

// Errors of a configuration that cannot be used.
var (
	// ErrTokenFormat means the token is not a bootstrap token
	// ("[a-z0-9]{6}.[a-z0-9]{16}").
	ErrTokenFormat = errors.New("not a bootstrap token of the form [a-z0-9]{6}.[a-z0-9]{16}")
	// ErrNoCAVerification means no CA hash was given and skipping the CA
	// verification was not asked for explicitly.
	ErrNoCAVerification = errors.New("no --discovery-token-ca-cert-hash given: joining without pinning the cluster CA trusts whoever answers at the endpoint; " +
		"pass the hash (on a control-plane node: kubeadm token create --print-join-command) or, knowingly, --discovery-token-unsafe-skip-ca-verification")
)

// DialFunc opens a network connection, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Config says what to join and how.
type Config struct {
	// APIEndpoint is the API server to discover the cluster from, as
	// host:port (kubeadm join's argument).
	APIEndpoint string
	// Token is the bootstrap token, "<id>.<secret>", used both to check the
	// cluster-info signature and as the bootstrap credential.
	Token string
	// CACertHashes are the accepted public key pins of the cluster CA,
	// "sha256:<hex>"; the CA must match one of them.
	CACertHashes []string
	// UnsafeSkipCAVerification allows joining with no CACertHashes: the
	// CA is then trusted on the token's signature alone.
	UnsafeSkipCAVerification bool
	// NodeName is the node's name; empty means the hostname.
	NodeName string
	// Hostname is the machine's hostname, which kubelet uses as the node's
	// name unless told otherwise; empty means os.Hostname.
	Hostname string
	// NodeIP, if set, is the node's IP (or comma-separated dual-stack IPs),
	// recorded as kubelet's --node-ip.
	NodeIP string
	// CRISocket is the container runtime endpoint, e.g.
	// unix:///run/containerd/containerd.sock (a bare path gets unix://).
	CRISocket string
	// KubeletExtraArgs are further kubelet flags for kubeadm-flags.env, as
	// "name=value" (or "--name=value"), kubeadm's kubeletExtraArgs.
	KubeletExtraArgs []string
	// Force joins even when the node holds another cluster's credentials
	// (they are removed) or a Ready node of the same name exists.
	Force bool
	// Paths are the files read and written.
	Paths Paths
	// Dial, if set, opens the connections to the API server.
	Dial DialFunc
	// Clock paces the retries.
	Clock clock.Clock
	// Timeout bounds each wait for the API server: discovery, then the
	// reads of the cluster's configuration. Zero means DefaultTimeout.
	Timeout time.Duration
	// RetryInterval is the longest pause between two attempts; the first
	// are shorter. Zero means DefaultRetryInterval.
	RetryInterval time.Duration
}

// Paths are the files join reads and writes: those of a kubeadm worker.
type Paths struct {
	// KubeletKubeconfig is the node's own kubeconfig
	// (/etc/kubernetes/kubelet.conf), only checked: a node joined to
	// another cluster is refused.
	KubeletKubeconfig string
	// BootstrapKubeconfig receives the bootstrap kubeconfig
	// (/etc/kubernetes/bootstrap-kubelet.conf).
	BootstrapKubeconfig string
	// CACert receives the cluster CA (/etc/kubernetes/pki/ca.crt).
	CACert string
	// KubeletConfig receives the KubeletConfiguration
	// (/var/lib/kubelet/config.yaml).
	KubeletConfig string
	// InstanceConfig receives the node's own KubeletConfiguration fields
	// (/var/lib/kubelet/instance-config.yaml).
	InstanceConfig string
	// KubeadmFlags receives the node-specific kubelet flags
	// (/var/lib/kubelet/kubeadm-flags.env).
	KubeadmFlags string
	// CertDir is kubelet's certificate directory (/var/lib/kubelet/pki),
	// where a forced join removes another cluster's client certificate.
	CertDir string
	// SystemdResolvConf is where systemd-resolved keeps the upstream
	// resolv.conf (/run/systemd/resolve/resolv.conf). When it exists and
	// the cluster sets no resolvConf, the node's configuration points at
	// it, as kubeadm does on a node that runs systemd-resolved.
	SystemdResolvConf string
}

// DefaultPaths returns a kubeadm worker's paths below root ("/" on a
// node; a temporary folder in tests).
func DefaultPaths(root string) Paths {
	at := func(p string) string { return filepath.Join(root, p) }
	return Paths{
		KubeletKubeconfig:   at("/etc/kubernetes/kubelet.conf"),
		BootstrapKubeconfig: at("/etc/kubernetes/bootstrap-kubelet.conf"),
		CACert:              at("/etc/kubernetes/pki/ca.crt"),
		KubeletConfig:       at("/var/lib/kubelet/config.yaml"),
		InstanceConfig:      at("/var/lib/kubelet/instance-config.yaml"),
		KubeadmFlags:        at("/var/lib/kubelet/kubeadm-flags.env"),
		CertDir:             at("/var/lib/kubelet/pki"),
		SystemdResolvConf:   at(systemdResolvConf),
	}
}

// systemdResolvConf is the resolv.conf kubeadm points kubelet at when
// systemd-resolved runs (its stub resolver is useless inside pods).
const systemdResolvConf = "/run/systemd/resolve/resolv.conf"

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if err := validateEndpoint(c.APIEndpoint); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseToken(c.Token); err != nil {
		errs = append(errs, fmt.Errorf("token: %w", err))
	}
	if _, err := parsePins(c.CACertHashes); err != nil {
		errs = append(errs, err)
	}
	if len(c.CACertHashes) == 0 && !c.UnsafeSkipCAVerification {
		errs = append(errs, ErrNoCAVerification)
	}
	for _, n := range []struct{ what, name string }{{"node name", c.NodeName}, {"hostname", c.Hostname}} {
		if n.name == "" {
			continue
		}
		for _, msg := range validation.IsDNS1123Subdomain(n.name) {
			errs = append(errs, fmt.Errorf("%s %q: %s", n.what, n.name, msg))
		}
	}
	if c.NodeIP != "" {
		if err := validateNodeIP(c.NodeIP); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := criEndpoint(c.CRISocket); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.extraArgs(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.Paths.validate()...)
	if c.Clock == nil {
		errs = append(errs, errors.New("clock: required"))
	}
	if c.Timeout < 0 || c.RetryInterval < 0 {
		errs = append(errs, errors.New("timeout and retry interval must not be negative"))
	}
	return errors.Join(errs...)
}

func (p *Paths) validate() []error {
	var errs []error
	for _, f := range []struct{ what, path string }{
		{"kubelet kubeconfig", p.KubeletKubeconfig}, {"bootstrap kubeconfig", p.BootstrapKubeconfig},
		{"CA certificate", p.CACert}, {"kubelet configuration", p.KubeletConfig},
		{"instance configuration", p.InstanceConfig}, {"kubeadm flags", p.KubeadmFlags},
		{"certificate directory", p.CertDir}, {"systemd-resolved resolv.conf", p.SystemdResolvConf},
	} {
		if !filepath.IsAbs(f.path) {
			errs = append(errs, fmt.Errorf("%s path %q: must be absolute", f.what, f.path))
		}
	}
	return errs
}

// timeout returns c.Timeout or its default.
func (c *Config) timeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// retryInterval returns c.RetryInterval or its default.
func (c *Config) retryInterval() time.Duration {
	if c.RetryInterval == 0 {
		return DefaultRetryInterval
	}
	return c.RetryInterval
}

func validateEndpoint(endpoint string) error {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return fmt.Errorf("API server endpoint %q: want host:port: %w", endpoint, err)
	}
	if host == "" {
		return fmt.Errorf("API server endpoint %q: no host", endpoint)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("API server endpoint %q: port must be 1-65535", endpoint)
	}
	return nil
}

func validateNodeIP(v string) error {
	ips := strings.Split(v, ",")
	if len(ips) > 2 {
		return fmt.Errorf("node IP %q: at most two addresses (one per family)", v)
	}
	families := map[bool]bool{}
	for _, s := range ips {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return fmt.Errorf("node IP %q: %q is not an IP address", v, s)
		}
		v4 := ip.To4() != nil
		if families[v4] {
			return fmt.Errorf("node IP %q: two addresses of the same family", v)
		}
		families[v4] = true
	}
	return nil
}

// criEndpoint returns the runtime endpoint as a URL, adding unix:// to a
// bare path as kubeadm does.
func criEndpoint(socket string) (string, error) {
	switch {
	case socket == "":
		return "", errors.New("CRI socket: required")
	case strings.HasPrefix(socket, "/"):
		return "unix://" + socket, nil
	case strings.HasPrefix(socket, "unix:///"):
		return socket, nil
	}
	return "", fmt.Errorf("CRI socket %q: want unix:///path or an absolute path", socket)
}

// flagArg is one kubelet flag of kubeadm-flags.env.
type flagArg struct{ name, value string }

// extraArgs returns the flags given for kubeadm-flags.env: --node-ip, then
// KubeletExtraArgs in their order.
func (c *Config) extraArgs() ([]flagArg, error) {
	var args []flagArg
	if c.NodeIP != "" {
		args = append(args, flagArg{"node-ip", c.NodeIP})
	}
	for _, a := range c.KubeletExtraArgs {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !ok || name == "" || strings.ContainsAny(name, " \t\"") || strings.Contains(value, "\n") {
			return nil, fmt.Errorf("kubelet argument %q: want name=value", a)
		}
		if name == "node-ip" && c.NodeIP != "" {
			return nil, errors.New("kubelet argument node-ip: given twice (node IP and extra argument)")
		}
		args = append(args, flagArg{name, value})
	}
	return args, nil
}

// bootstrapTokenRE is the form of a bootstrap token, as the apiserver's
// bootstrap token authenticator accepts it.
var bootstrapTokenRE = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// bootstrapToken is a parsed bootstrap token. Its secret never goes into
// logs or errors.
type bootstrapToken struct {
	id     string
	secret string
}

// parseToken parses "<id>.<secret>".
func parseToken(s string) (bootstrapToken, error) {
	m := bootstrapTokenRE.FindStringSubmatch(s)
	if m == nil {
		// Quote only what cannot be the secret.
		id, _, _ := strings.Cut(s, ".")
		if len(id) > 6 {
			id = id[:6] + "..."
		}
		return bootstrapToken{}, fmt.Errorf("%w (token ID %q, %d characters in all)", ErrTokenFormat, id, len(s))
	}
	return bootstrapToken{id: m[1], secret: m[2]}, nil
}

// String returns the token as the bootstrap credential.
func (t bootstrapToken) String() string { return t.id + "." + t.secret }

// pinSet holds public key pins: lowercase hex SHA-256 of SPKIs.
type pinSet map[string]bool

// parsePins parses "sha256:<hex>" pins, as kubeadm accepts them.
func parsePins(hashes []string) (pinSet, error) {
	pins := pinSet{}
	for _, h := range hashes {
		format, value, ok := strings.Cut(h, ":")
		if !ok || !strings.EqualFold(format, "sha256") {
			return nil, fmt.Errorf("CA certificate hash %q: want sha256:<64 hex digits>", h)
		}
		raw, err := hex.DecodeString(value)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("CA certificate hash %q: want sha256:<64 hex digits>", h)
		}
		pins[hex.EncodeToString(raw)] = true
	}
	return pins, nil
}

// CACertHash returns the public key pin of a CA certificate, the form of
// --discovery-token-ca-cert-hash: "sha256:" and the hex SHA-256 of its
// DER SubjectPublicKeyInfo.
func CACertHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// matches tells whether cert's public key is pinned.
func (p pinSet) matches(cert *x509.Certificate) bool {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return p[hex.EncodeToString(sum[:])]
}
