package bootstrap

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/certificate"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/kubelet/atomicfile"
)

// storePrefix names the certificate files, as kubelet names them.
const storePrefix = "kubelet-client"

// Config says where the node's credentials live.
type Config struct {
	// NodeName is the node's name: the certificate is for
	// system:node:<NodeName>.
	NodeName string
	// Kubeconfig is the node's kubeconfig (/etc/kubernetes/kubelet.conf),
	// written here after a bootstrap.
	Kubeconfig string
	// BootstrapKubeconfig holds the bootstrap token credentials
	// (/etc/kubernetes/bootstrap-kubelet.conf).
	BootstrapKubeconfig string
	// CertDir holds the certificate files (/var/lib/kubelet/pki).
	CertDir string
	// Clock tells the time (certificate validity).
	Clock clock.Clock
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name: required"))
	}
	for name, p := range map[string]string{"kubeconfig": c.Kubeconfig, "bootstrap kubeconfig": c.BootstrapKubeconfig, "cert dir": c.CertDir} {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s %q: must be an absolute path", name, p))
		}
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("clock: required"))
	}
	return errors.Join(errs...)
}

// LoadClientConfig returns the node's client configuration. When the node's
// kubeconfig holds a valid client certificate, that is all; otherwise it
// reuses a valid certificate in CertDir or, failing that, requests one with
// the bootstrap credentials (blocking until it is approved and issued or
// ctx ends), and (re)writes the kubeconfig.
func LoadClientConfig(ctx context.Context, cfg Config) (*rest.Config, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bootstrap config: %w", err)
	}
	log := klog.FromContext(ctx)
	if rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig); err == nil {
		if valid, why := certValid(rc, cfg.Clock.Now()); valid {
			log.V(2).Info("Using the node's kubeconfig", "path", cfg.Kubeconfig)
			return rc, nil
		} else {
			log.Info("Node kubeconfig cannot be used, bootstrapping", "path", cfg.Kubeconfig, "reason", why)
		}
	}
	boot, err := clientcmd.BuildConfigFromFlags("", cfg.BootstrapKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("no usable node kubeconfig %s, and the bootstrap kubeconfig fails: %w", cfg.Kubeconfig, err)
	}
	store, err := newStore(cfg)
	if err != nil {
		return nil, err
	}
	if cert, err := store.Current(); err == nil && cert.Leaf != nil && cfg.Clock.Now().Before(cert.Leaf.NotAfter) {
		log.Info("Reusing the client certificate in the certificate directory", "path", store.CurrentPath())
	} else if err := requestCertificate(ctx, cfg, boot, store); err != nil {
		return nil, err
	}
	if err := writeKubeconfig(cfg.Kubeconfig, boot, store.CurrentPath()); err != nil {
		return nil, err
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load the kubeconfig just written: %w", err)
	}
	return rc, nil
}

// certValid tells whether rc's client certificate can be used now.
func certValid(rc *rest.Config, now time.Time) (bool, string) {
	pair, err := loadPair(rc)
	if err != nil {
		return false, err.Error()
	}
	if now.After(pair.Leaf.NotAfter) {
		return false, fmt.Sprintf("client certificate expired at %s", pair.Leaf.NotAfter.UTC())
	}
	return true, ""
}

func loadPair(rc *rest.Config) (*tls.Certificate, error) {
	var pair tls.Certificate
	var err error
	switch {
	case len(rc.CertData) > 0 && len(rc.KeyData) > 0:
		pair, err = tls.X509KeyPair(rc.CertData, rc.KeyData)
	case rc.CertFile != "" && rc.KeyFile != "":
		pair, err = tls.LoadX509KeyPair(rc.CertFile, rc.KeyFile)
	default:
		return nil, errors.New("no client certificate")
	}
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return &pair, nil
}

// clientTemplate is the certificate request of a node's client identity,
// what the Node authorizer and the CSR approver expect.
func clientTemplate(node string) *x509.CertificateRequest {
	return &x509.CertificateRequest{Subject: pkix.Name{
		CommonName:   "system:node:" + node,
		Organization: []string{"system:nodes"},
	}}
}

// clientUsages are those of an ECDSA client key.
var clientUsages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}

// newStore returns the certificate store in CertDir, with kubelet's file
// names.
func newStore(cfg Config) (certificate.FileStore, error) {
	store, err := certificate.NewFileStore(storePrefix, cfg.CertDir, cfg.CertDir, "", "")
	if err != nil {
		return nil, fmt.Errorf("certificate store %s: %w", cfg.CertDir, err)
	}
	return store, nil
}

// requestCertificate gets a client certificate through a CSR made with the
// bootstrap credentials, and stores it with its key.
func requestCertificate(ctx context.Context, cfg Config, boot *rest.Config, store certificate.Store) error {
	client, err := kubernetes.NewForConfig(boot)
	if err != nil {
		return fmt.Errorf("bootstrap client: %w", err)
	}
	return requestCertificateWith(ctx, cfg, client, store)
}

// requestCertificateWith is requestCertificate with the client given.
func requestCertificateWith(ctx context.Context, cfg Config, client kubernetes.Interface, store certificate.Store) error {
	log := klog.FromContext(ctx)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, clientTemplate(cfg.NodeName), key)
	if err != nil {
		return fmt.Errorf("create certificate request: %w", err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	name, uid, err := csr.RequestCertificateWithContext(ctx, client, csrPEM, "", certificatesv1.KubeAPIServerClientKubeletSignerName, nil, clientUsages, key)
	if err != nil {
		return fmt.Errorf("request client certificate: %w", err)
	}
	log.Info("Waiting for the client certificate to be approved and issued", "csr", name)
	certPEM, err := csr.WaitForCertificate(ctx, client, name, uid)
	if err != nil {
		return fmt.Errorf("wait for certificate of CSR %s: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if _, err := store.Update(certPEM, keyPEM); err != nil {
		return fmt.Errorf("store client certificate: %w", err)
	}
	log.Info("Client certificate issued", "csr", name)
	return nil
}

// writeKubeconfig writes the node's kubeconfig: the bootstrap kubeconfig's
// server and CA, and the stored certificate pair (one file holding both, as
// kubelet writes it), so that rotation only replaces the file.
func writeKubeconfig(path string, boot *rest.Config, pairFile string) error {
	ca := boot.CAData
	if len(ca) == 0 && boot.CAFile != "" {
		data, err := os.ReadFile(boot.CAFile)
		if err != nil {
			return fmt.Errorf("read cluster CA: %w", err)
		}
		ca = data
	}
	kc := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{"default-cluster": {
			Server:                   boot.Host,
			CertificateAuthorityData: ca,
		}},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{"default-auth": {
			ClientCertificate: pairFile,
			ClientKey:         pairFile,
		}},
		Contexts: map[string]*clientcmdapi.Context{"default-context": {
			Cluster:   "default-cluster",
			AuthInfo:  "default-auth",
			Namespace: "default",
		}},
		CurrentContext: "default-context",
	}
	data, err := clientcmd.Write(kc)
	if err != nil {
		return fmt.Errorf("write node kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write node kubeconfig: %w", err)
	}
	// 0600, as clientcmd.WriteToFile writes a kubeconfig.
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("write node kubeconfig: %w", err)
	}
	return nil
}
