package join

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/klog/v2"
)

// Names in the kube-public/cluster-info ConfigMap, which kubeadm creates
// and the bootstrap signer (kube-controller-manager) signs for every
// bootstrap token allowed for signing.
const (
	clusterInfoNamespace = metav1.NamespacePublic
	clusterInfoName      = "cluster-info"
	// clusterInfoKubeconfigKey holds a kubeconfig that names the API
	// server and its CA.
	clusterInfoKubeconfigKey = "kubeconfig"
	// clusterInfoSignaturePrefix + token ID holds the detached JWS of the
	// kubeconfig made with that token's secret.
	clusterInfoSignaturePrefix = "jws-kubeconfig-"
)

// requestTimeout bounds each request to the API server, as kubeadm's.
const requestTimeout = 10 * time.Second

// userAgent identifies join's requests in the API server's logs.
const userAgent = "berth-join"

// Errors of discovery.
var (
	// ErrNoSignature means cluster-info carries no signature for the
	// token's ID (after waiting for one to appear): the cluster does not
	// know the token, or it has expired.
	ErrNoSignature = errors.New("cluster-info has no JWS signature for this token ID: the token is unknown to the cluster or has expired " +
		"(create one on a control-plane node: kubeadm token create --print-join-command)")
	// ErrNoClusterInfo means cluster-info has no kubeconfig, or one that
	// names no API server and CA.
	ErrNoClusterInfo = errors.New("cluster-info has no usable kubeconfig: the API server is not set up for token bootstrap")
	// ErrNoPinMatch means the CA in cluster-info matches none of the given
	// public key pins.
	ErrNoPinMatch = errors.New("the cluster CA matches none of the given --discovery-token-ca-cert-hash values")
	// ErrUntrustedServer means the API server's certificate does not
	// verify against the pinned CA.
	ErrUntrustedServer = errors.New("the API server's certificate does not verify against the pinned cluster CA")
	// ErrClusterInfoChanged means cluster-info read through the pinned CA
	// differs from the one first read.
	ErrClusterInfoChanged = errors.New("cluster-info read through the pinned CA differs from the one first read without verification: refusing to trust it")
)

// clusterInfo is the cluster as discovery found and verified it.
type clusterInfo struct {
	// server is the API server URL cluster-info names: the node's
	// credentials point there.
	server string
	// caPEM is the CA bundle as cluster-info holds it.
	caPEM []byte
	// caCerts are caPEM's certificates.
	caCerts []*x509.Certificate
	// caHash is the pin of the CA certificate that matched (the first
	// one when nothing was pinned).
	caHash string
}

// discover finds and verifies the cluster at cfg.APIEndpoint, as kubeadm's
// token discovery does.
func discover(ctx context.Context, cfg *Config, tok bootstrapToken, pins pinSet) (*clusterInfo, error) {
	log := klog.FromContext(ctx)
	poll := poller{clock: cfg.Clock, timeout: cfg.timeout(), maxDelay: cfg.retryInterval()}
	host := "https://" + cfg.APIEndpoint

	// The node has no CA yet: this one read is not verified. What it
	// returns is trusted only once the signature below checks out.
	insecure := cfg.restConfig(host)
	insecure.Insecure = true
	client, err := kubernetes.NewForConfig(insecure)
	if err != nil {
		return nil, fmt.Errorf("cluster-info client: %w", err)
	}
	log.Info("Reading cluster-info", "insecure", true)
	var kubeconfig string
	err = poll.run(ctx, "read cluster-info", func(ctx context.Context) (bool, error) {
		cm, err := getClusterInfo(ctx, client)
		if err != nil {
			return true, err
		}
		kubeconfig, err = verifyClusterInfo(cm, tok)
		// The bootstrap signer adds the signature a little after the token
		// is created: wait for it, as kubeadm does.
		return errors.Is(err, ErrNoSignature), err
	})
	if err != nil {
		return nil, err
	}
	info, err := parseClusterInfo([]byte(kubeconfig))
	if err != nil {
		return nil, err
	}
	log.V(1).Info("cluster-info signature verified", "server", info.server)
	if len(pins) == 0 {
		info.caHash = CACertHash(info.caCerts[0])
		log.Info("Warning: trusting the cluster CA on the token's signature alone (CA verification skipped)", "caCertHash", info.caHash)
		return info, nil
	}
	if info.caHash, err = checkPins(info.caCerts, pins); err != nil {
		return nil, err
	}
	if err := confirmClusterInfo(ctx, cfg, poll, host, info.caPEM, kubeconfig); err != nil {
		return nil, err
	}
	log.Info("Cluster CA verified", "caCertHash", info.caHash, "server", info.server)
	return info, nil
}

// confirmClusterInfo reads cluster-info again through a client that trusts
// only the pinned CA, and checks it is the one first read: the server then
// holds the key of the CA the signature vouched for.
func confirmClusterInfo(ctx context.Context, cfg *Config, poll poller, host string, caPEM []byte, kubeconfig string) error {
	secure := cfg.restConfig(host)
	secure.CAData = caPEM
	client, err := kubernetes.NewForConfig(secure)
	if err != nil {
		return fmt.Errorf("cluster-info client: %w", err)
	}
	return poll.run(ctx, "read cluster-info through the pinned CA", func(ctx context.Context) (bool, error) {
		cm, err := getClusterInfo(ctx, client)
		if isCertificateError(err) {
			return false, fmt.Errorf("%w: %w", ErrUntrustedServer, err)
		}
		if err != nil {
			return true, err
		}
		if cm.Data[clusterInfoKubeconfigKey] != kubeconfig {
			return false, ErrClusterInfoChanged
		}
		return false, nil
	})
}

// restConfig returns the client configuration of a request to host,
// without credentials.
func (c *Config) restConfig(host string) *rest.Config {
	// QPS < 0: no client-side rate limit. Join makes a handful of requests
	// and paces its retries itself.
	rc := &rest.Config{Host: host, Timeout: requestTimeout, UserAgent: userAgent, QPS: -1}
	if c.Dial != nil {
		rc.Dial = c.Dial
	}
	return rc
}

func getClusterInfo(ctx context.Context, client kubernetes.Interface) (*v1.ConfigMap, error) {
	cm, err := client.CoreV1().ConfigMaps(clusterInfoNamespace).Get(ctx, clusterInfoName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", clusterInfoNamespace, clusterInfoName, err)
	}
	return cm, nil
}

// verifyClusterInfo returns the kubeconfig of cluster-info once its
// signature for tok verifies.
func verifyClusterInfo(cm *v1.ConfigMap, tok bootstrapToken) (string, error) {
	sig, ok := cm.Data[clusterInfoSignaturePrefix+tok.id]
	if !ok || sig == "" {
		return "", fmt.Errorf("%w (token ID %q)", ErrNoSignature, tok.id)
	}
	kubeconfig := cm.Data[clusterInfoKubeconfigKey]
	if kubeconfig == "" {
		return "", ErrNoClusterInfo
	}
	if err := verifyDetachedJWS(sig, kubeconfig, tok); err != nil {
		return "", fmt.Errorf("token ID %q: %w", tok.id, err)
	}
	return kubeconfig, nil
}

// parseClusterInfo returns the API server and CA the kubeconfig of
// cluster-info names.
func parseClusterInfo(kubeconfig []byte) (*clusterInfo, error) {
	kc, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoClusterInfo, err)
	}
	cluster, err := currentCluster(kc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoClusterInfo, err)
	}
	u, err := url.Parse(cluster.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: server %q is not an https URL", ErrNoClusterInfo, cluster.Server)
	}
	if len(cluster.CertificateAuthorityData) == 0 {
		return nil, fmt.Errorf("%w: no certificate-authority-data", ErrNoClusterInfo)
	}
	certs, err := certutil.ParseCertsPEM(cluster.CertificateAuthorityData)
	if err != nil {
		return nil, fmt.Errorf("%w: CA: %w", ErrNoClusterInfo, err)
	}
	return &clusterInfo{server: cluster.Server, caPEM: cluster.CertificateAuthorityData, caCerts: certs}, nil
}

// currentCluster returns the cluster a kubeconfig uses: its only cluster
// (cluster-info's has one, unnamed, and no context), or that of its
// current context.
func currentCluster(kc *clientcmdapi.Config) (*clientcmdapi.Cluster, error) {
	if len(kc.Clusters) == 1 {
		for _, c := range kc.Clusters {
			return c, nil
		}
	}
	if ctx := kc.Contexts[kc.CurrentContext]; ctx != nil {
		if c := kc.Clusters[ctx.Cluster]; c != nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no cluster for current context %q among %d clusters", kc.CurrentContext, len(kc.Clusters))
}

// checkPins returns the pin of the first CA certificate that is pinned, or
// an error that shows the CA's actual hashes.
func checkPins(certs []*x509.Certificate, pins pinSet) (string, error) {
	var actual []string
	for _, c := range certs {
		if pins.matches(c) {
			return CACertHash(c), nil
		}
		actual = append(actual, CACertHash(c))
	}
	return "", fmt.Errorf("%w: the CA in cluster-info has hash %s", ErrNoPinMatch, strings.Join(actual, ", "))
}

// isCertificateError tells whether err is the failure to verify the
// server's certificate, which retrying does not mend.
func isCertificateError(err error) bool {
	var verr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}
