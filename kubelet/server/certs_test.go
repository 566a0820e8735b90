package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func selfSignedConfig(t *testing.T, dir string, c *clocktesting.FakeClock) Config {
	t.Helper()
	cfg := validConfig()
	cfg.Clock = c
	cfg.TLS = ServingCert{Dir: dir, Hostname: "node1.example", IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("fd00::11")}}
	return cfg
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSelfSignedGeneratedOnceAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	clock := clocktesting.NewFakeClock(time.Now())
	cfg := selfSignedConfig(t, dir, clock)
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	certPEM := readFile(t, filepath.Join(dir, "kubelet.crt"))
	keyPEM := readFile(t, filepath.Join(dir, "kubelet.key"))
	if st, err := os.Stat(filepath.Join(dir, "kubelet.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("kubelet.key mode %v, %v; want 0600", st.Mode(), err)
	}
	block, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"node1.example", "127.0.0.1", "fd00::11"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("certificate does not name %s: %v", name, err)
		}
	}
	if got := leaf.NotAfter.Sub(clock.Now()); got < 364*24*time.Hour {
		t.Errorf("certificate valid for %s, want a year", got)
	}

	// Reused while it fits.
	clock.Step(300 * 24 * time.Hour)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(certPEM, readFile(t, filepath.Join(dir, "kubelet.crt"))) || !bytes.Equal(keyPEM, readFile(t, filepath.Join(dir, "kubelet.key"))) {
		t.Error("a valid self-signed pair was regenerated")
	}
	served, err := s.TLSConfig().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || !bytes.Equal(served.Certificate[0], block.Bytes) {
		t.Errorf("serves another certificate than kubelet.crt (%v)", err)
	}
}

func TestSelfSignedRegenerated(t *testing.T) {
	tests := map[string]func(cfg *Config, clock *clocktesting.FakeClock, dir string){
		"expired": func(_ *Config, c *clocktesting.FakeClock, _ string) { c.Step(366 * 24 * time.Hour) },
		"new address": func(cfg *Config, _ *clocktesting.FakeClock, _ string) {
			cfg.TLS.IPs = append(cfg.TLS.IPs, net.ParseIP("10.0.0.7"))
		},
		"new hostname": func(cfg *Config, _ *clocktesting.FakeClock, _ string) { cfg.TLS.Hostname = "node2.example" },
		"corrupt": func(_ *Config, _ *clocktesting.FakeClock, dir string) {
			_ = os.WriteFile(filepath.Join(dir, "kubelet.crt"), []byte("garbage"), 0o644)
		},
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "pki")
			clock := clocktesting.NewFakeClock(time.Now())
			cfg := selfSignedConfig(t, dir, clock)
			if _, err := New(cfg); err != nil {
				t.Fatal(err)
			}
			before := readFile(t, filepath.Join(dir, "kubelet.crt"))
			change(&cfg, clock, dir)
			if _, err := New(cfg); err != nil {
				t.Fatal(err)
			}
			after := readFile(t, filepath.Join(dir, "kubelet.crt"))
			if bytes.Equal(before, after) {
				t.Fatal("certificate not regenerated")
			}
			block, _ := pem.Decode(after)
			leaf, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !certFits(leaf, cfg.TLS.Hostname, cfg.TLS.IPs, clock.Now()) {
				t.Error("regenerated certificate does not fit")
			}
		})
	}
}

// writePair writes a serving pair for cn signed by ca and returns the
// certificate's DER.
func writePair(t *testing.T, ca *testCA, cn, certFile, keyFile string, mtime time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := ca.issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}, key.Public())
	keyDER, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{certFile, keyFile} {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return der
}

func TestCertFilesReloaded(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writePair(t, ca, "first", certFile, keyFile, time.Now().Add(-time.Hour))
	clock := clocktesting.NewFakeClock(time.Now())
	cfg := validConfig()
	cfg.Clock = clock
	cfg.TLS = ServingCert{CertFile: certFile, KeyFile: keyFile}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := func() []byte {
		t.Helper()
		c, err := s.TLSConfig().GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificate[0]
	}
	if !bytes.Equal(served(), first) {
		t.Fatal("does not serve the configured certificate")
	}
	second := writePair(t, ca, "second", certFile, keyFile, time.Now())
	if !bytes.Equal(served(), first) {
		t.Error("files looked at again before a minute passed")
	}
	clock.Step(time.Minute)
	if !bytes.Equal(served(), second) {
		t.Error("renewed certificate not served")
	}
	// A broken pair leaves the last good one in use.
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Step(time.Minute)
	if !bytes.Equal(served(), second) {
		t.Error("a broken pair replaced the good one")
	}
}

func TestMissingCertFiles(t *testing.T) {
	cfg := validConfig()
	cfg.TLS = ServingCert{CertFile: "/nonexistent/tls.crt", KeyFile: "/nonexistent/tls.key"}
	if _, err := New(cfg); err == nil {
		t.Error("New with missing certificate files: nil error")
	}
}

func TestMissingClientCA(t *testing.T) {
	cfg := selfSignedConfig(t, t.TempDir(), clocktesting.NewFakeClock(time.Now()))
	cfg.Authentication.ClientCAFile = filepath.Join(t.TempDir(), "ca.crt")
	if _, err := New(cfg); err == nil {
		t.Error("New with a missing client CA file: nil error")
	}
}
