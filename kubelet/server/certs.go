package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/kubelet/atomicfile"
)

// The self-signed pair's file names in the certificate directory, as
// kubelet names them.
const (
	selfSignedCertName = "kubelet.crt"
	selfSignedKeyName  = "kubelet.key"
)

// selfSignedValidity is how long a generated certificate lasts, as
// kubelet's.
const selfSignedValidity = 365 * 24 * time.Hour

// fileCheckInterval is how often configured certificate files are checked
// for a change.
const fileCheckInterval = time.Minute

// certSource hands out the serving certificate for each handshake.
type certSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// staticCert always serves the same certificate.
type staticCert struct{ cert *tls.Certificate }

// GetCertificate returns the certificate.
func (s staticCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert, nil
}

// selfSigned returns the self-signed pair in dir, generating it when it is
// missing, unreadable, out of its validity or does not name hostname and
// every one of ips. The second result says it was generated.
func selfSigned(dir, hostname string, ips []net.IP, now time.Time) (*tls.Certificate, bool, error) {
	certPath := filepath.Join(dir, selfSignedCertName)
	keyPath := filepath.Join(dir, selfSignedKeyName)
	if pair, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && certFits(pair.Leaf, hostname, ips, now) {
		return &pair, false, nil
	}
	certPEM, keyPEM, err := generateSelfSigned(hostname, ips, now)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, fmt.Errorf("certificate directory: %w", err)
	}
	if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := atomicfile.Write(certPath, certPEM, 0o644); err != nil {
		return nil, false, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, false, fmt.Errorf("generated certificate: %w", err)
	}
	return &pair, true, nil
}

// certFits tells whether leaf is valid at now for hostname and ips.
func certFits(leaf *x509.Certificate, hostname string, ips []net.IP, now time.Time) bool {
	if leaf == nil || now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		return false
	}
	if hostname != "" && leaf.VerifyHostname(hostname) != nil {
		return false
	}
	for _, ip := range ips {
		if leaf.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

// generateSelfSigned makes an ECDSA P-256 serving certificate for hostname
// and ips, signed by its own key.
func generateSelfSigned(hostname string, ips []net.IP, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("serial number: %w", err)
	}
	name := hostname
	if name == "" {
		name = ips[0].String()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s@%d", name, now.Unix())},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           ips,
	}
	addHost(tmpl, hostname)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// addHost names hostname in tmpl: as an address when it is one.
func addHost(tmpl *x509.Certificate, hostname string) {
	if hostname == "" {
		return
	}
	if ip := net.ParseIP(hostname); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		return
	}
	tmpl.DNSNames = append(tmpl.DNSNames, hostname)
}

// fileCert serves the configured certificate files and reloads them when
// they change, so that a renewed certificate is served without a restart.
type fileCert struct {
	certFile, keyFile string
	clock             clock.PassiveClock

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

// newFileCert loads the pair in certFile and keyFile.
func newFileCert(certFile, keyFile string, c clock.PassiveClock) (*fileCert, error) {
	f := &fileCert{certFile: certFile, keyFile: keyFile, clock: c}
	if err := f.load(); err != nil {
		return nil, err
	}
	f.checked = c.Now()
	return f, nil
}

// GetCertificate returns the pair, reloaded first if the files changed
// since they were last looked at (at most once a minute). A pair that no
// longer loads leaves the last good one in use.
func (f *fileCert) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := f.clock.Now(); now.Sub(f.checked) >= fileCheckInterval {
		f.checked = now
		if stamp, err := f.fileStamp(); err == nil && stamp != f.stamp {
			if err := f.load(); err != nil {
				helloLogger(hello).Error(err, "Keeping the serving certificate in use", "certFile", f.certFile)
			} else {
				helloLogger(hello).Info("Reloaded the serving certificate", "certFile", f.certFile)
			}
		}
	}
	return f.cert, nil
}

// load reads the pair; the caller holds mu or owns f.
func (f *fileCert) load() error {
	stamp, err := f.fileStamp()
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	f.cert, f.stamp = &pair, stamp
	return nil
}

// fileStamp identifies the files' current contents by size and time of
// modification.
func (f *fileCert) fileStamp() (string, error) {
	var stamp string
	for _, p := range []string{f.certFile, f.keyFile} {
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("serving certificate: %w", err)
		}
		stamp += fmt.Sprintf("%d/%d;", st.Size(), st.ModTime().UnixNano())
	}
	return stamp, nil
}

// errNoServingCert is what a handshake fails with while a bootstrapped
// serving certificate has not been issued.
var errNoServingCert = errors.New("no serving certificate available for the kubelet")

// helloLogger is the logger of the connection a handshake is for.
func helloLogger(hello *tls.ClientHelloInfo) klog.Logger {
	if hello == nil || hello.Context() == nil {
		return klog.Background()
	}
	return klog.FromContext(hello.Context())
}
