package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/certificate"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// servingStorePrefix names the bootstrapped serving certificate's files
// (kubelet-server-current.pem), as kubelet names them.
const servingStorePrefix = "kubelet-server"

// csrCheckInterval is how often the state of the serving certificate and
// its CSRs is looked at, to tell the operator what waits on them.
const csrCheckInterval = 30 * time.Second

// newServingCertManager returns the manager that requests the serving
// certificate with a kubernetes.io/kubelet-serving CSR and renews it before
// it expires, keeping the pair in the certificate directory.
func newServingCertManager(cfg *Config) (certificate.Manager, error) {
	store, err := certificate.NewFileStore(servingStorePrefix, cfg.TLS.Dir, cfg.TLS.Dir, "", "")
	if err != nil {
		return nil, fmt.Errorf("serving certificate store %s: %w", cfg.TLS.Dir, err)
	}
	client := cfg.Client
	mgr, err := certificate.NewManager(&certificate.Config{
		ClientsetFn: func(*tls.Certificate) (kubernetes.Interface, error) { return client, nil },
		Template:    servingTemplate(cfg.NodeName, cfg.TLS.Hostname, cfg.TLS.IPs),
		SignerName:  certificatesv1.KubeletServingSignerName,
		// Key encipherment is asked for only with an RSA key.
		GetUsages:        certificate.DefaultKubeletServingGetUsages,
		CertificateStore: store,
		Name:             servingStorePrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("serving certificate manager: %w", err)
	}
	return mgr, nil
}

// servingTemplate is the request of a node's serving certificate, what the
// API server's kubelet-serving signer accepts.
func servingTemplate(node, hostname string, ips []net.IP) *x509.CertificateRequest {
	tmpl := &x509.CertificateRequest{
		Subject: pkix.Name{
			CommonName:   "system:node:" + node,
			Organization: []string{"system:nodes"},
		},
		IPAddresses: slices.Clone(ips),
	}
	if ip := net.ParseIP(hostname); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if hostname != "" {
		tmpl.DNSNames = []string{hostname}
	}
	return tmpl
}

// managedCert serves the manager's current certificate: none until one is
// issued, and handshakes fail until then.
type managedCert struct{ mgr certificate.Manager }

// GetCertificate returns the current certificate.
func (m managedCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.mgr.Current(); c != nil {
		return c, nil
	}
	return nil, errNoServingCert
}

// csrWatcher tells the operator what the serving certificate waits for:
// kube-controller-manager approves the nodes' client CSRs but never their
// serving ones, so someone (or some approver) must.
type csrWatcher struct {
	mgr      certificate.Manager
	client   kubernetes.Interface
	nodeName string
	clock    clock.WithTicker

	serial  string
	pending string
}

// run checks at once and then every csrCheckInterval until ctx ends.
func (w *csrWatcher) run(ctx context.Context) {
	ticker := w.clock.NewTicker(csrCheckInterval)
	defer ticker.Stop()
	for {
		w.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// check logs a certificate newly issued, and the pending CSRs of this
// node: every time while there is no certificate, when they change while
// one is served (a renewal waits on approval).
func (w *csrWatcher) check(ctx context.Context) {
	log := klog.FromContext(ctx)
	cur := w.mgr.Current()
	if cur != nil && cur.Leaf != nil && cur.Leaf.SerialNumber.String() != w.serial {
		w.serial = cur.Leaf.SerialNumber.String()
		log.Info("Serving certificate issued", "subject", cur.Leaf.Subject.String(),
			"notAfter", cur.Leaf.NotAfter.UTC(), "dnsNames", cur.Leaf.DNSNames, "ips", cur.Leaf.IPAddresses)
	}
	var pending []string
	if cur == nil || renewing(cur.Leaf, w.clock.Now()) {
		var err error
		if pending, err = w.pendingCSRs(ctx); err != nil {
			log.V(2).Info("Cannot list the node's certificate signing requests", "err", err)
		}
	}
	names := strings.Join(pending, ",")
	switch {
	case cur == nil:
		log.Info("No valid serving certificate, the kubelet API refuses TLS handshakes: "+
			"approve the node's kubernetes.io/kubelet-serving CSR (kube-controller-manager does not approve serving CSRs), "+
			"e.g. kubectl certificate approve <csr>", "node", w.nodeName, "pendingCSRs", pending)
	case names != w.pending && len(pending) > 0:
		log.Info("Serving certificate renewal waits for CSR approval", "notAfter", cur.Leaf.NotAfter.UTC(), "pendingCSRs", pending)
	}
	w.pending = names
}

// renewing tells whether leaf is old enough for the manager to be renewing
// it: it does from 70 % of the lifetime on.
func renewing(leaf *x509.Certificate, now time.Time) bool {
	if leaf == nil {
		return true
	}
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	return !now.Before(leaf.NotBefore.Add(lifetime * 7 / 10))
}

// pendingCSRs names this node's serving CSRs that are neither approved nor
// denied.
func (w *csrWatcher) pendingCSRs(ctx context.Context) ([]string, error) {
	list, err := w.client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{
		FieldSelector: "spec.signerName=" + certificatesv1.KubeletServingSignerName,
	})
	if err != nil {
		return nil, fmt.Errorf("list certificate signing requests: %w", err)
	}
	var names []string
	for _, csr := range list.Items {
		if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName ||
			csr.Spec.Username != "system:node:"+w.nodeName || decided(&csr) {
			continue
		}
		names = append(names, csr.Name)
	}
	slices.Sort(names)
	return names, nil
}

// decided tells whether csr was approved, denied or failed.
func decided(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			return true
		}
	}
	return len(csr.Status.Certificate) > 0
}
