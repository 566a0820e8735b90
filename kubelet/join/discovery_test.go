package join

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// discoveryCAs are the CAs of the discovery tests: the cluster's, and
// another one.
type discoveryCAs struct{ ca, other *testCA }

// discoveryCase is a case of TestDiscovery.
type discoveryCase struct {
	name string
	// setup changes the fake API server and the configuration.
	setup func(t *testing.T, f *fakeAPI, cfg *Config, c discoveryCAs)
	// is is the error wanted, nil for success.
	is error
	// inErr must be in the error's message.
	inErr string
	// hashInErr tells that the cluster CA's hash must be in the error's
	// message.
	hashInErr bool
	// reads is the number of cluster-info reads wanted, 0 for any.
	reads int
}

var discoveryCases = []discoveryCase{
	{name: "signed and pinned", setup: func(*testing.T, *fakeAPI, *Config, discoveryCAs) {}, reads: 2},
	{
		name: "one of several pins",
		setup: func(_ *testing.T, _ *fakeAPI, cfg *Config, c discoveryCAs) {
			cfg.CACertHashes = []string{CACertHash(c.other.cert), CACertHash(c.ca.cert)}
		},
		reads: 2,
	},
	{
		name: "signature appears later",
		setup: func(t *testing.T, f *fakeAPI, _ *Config, c discoveryCAs) {
			unsigned := clusterInfoData(t, f.srv.URL, c.ca.pem, nil)
			signed := f.clusterInfo(1)
			f.clusterInfo = func(n int) map[string]string {
				if n <= 3 {
					return unsigned
				}
				return signed
			}
		},
		reads: 5,
	},
	{
		name: "cluster-info appears later",
		setup: func(t *testing.T, f *fakeAPI, _ *Config, c discoveryCAs) {
			signed := f.clusterInfo(1)
			f.clusterInfo = func(n int) map[string]string {
				if n <= 2 {
					return nil
				}
				return signed
			}
		},
		reads: 4,
	},
	{
		name: "unsafe: no pin, one read",
		setup: func(_ *testing.T, _ *fakeAPI, cfg *Config, c discoveryCAs) {
			cfg.CACertHashes, cfg.UnsafeSkipCAVerification = nil, true
		},
		reads: 1,
	},
	{
		name: "no signature for the token",
		setup: func(_ *testing.T, _ *fakeAPI, cfg *Config, c discoveryCAs) {
			cfg.Token = "qqqqqq.0123456789abcdef"
		},
		is: ErrNoSignature, inErr: `token ID "qqqqqq"`,
	},
	{
		name: "signed with another secret",
		setup: func(_ *testing.T, _ *fakeAPI, cfg *Config, c discoveryCAs) {
			cfg.Token = "zzzzzz.0123456789abcdef"
		},
		is: ErrBadSignature, reads: 1,
	},
	{
		name: "signature forged by the server",
		setup: func(t *testing.T, f *fakeAPI, _ *Config, c discoveryCAs) {
			forged := clusterInfoData(t, f.srv.URL, c.other.pem, map[string]string{testTokenID: "guessedguessed00"})
			f.clusterInfo = func(int) map[string]string { return forged }
		},
		is: ErrBadSignature, reads: 1,
	},
	{
		name: "no pin matches",
		setup: func(_ *testing.T, _ *fakeAPI, cfg *Config, c discoveryCAs) {
			cfg.CACertHashes = []string{CACertHash(c.other.cert)}
		},
		is: ErrNoPinMatch, hashInErr: true, reads: 1,
	},
	{
		name: "cluster-info changes between reads",
		setup: func(t *testing.T, f *fakeAPI, _ *Config, c discoveryCAs) {
			first := f.clusterInfo(1)
			second := clusterInfoData(t, "https://10.0.0.1:6443", c.ca.pem, map[string]string{testTokenID: testTokenSecret})
			f.clusterInfo = func(n int) map[string]string {
				if n == 1 {
					return first
				}
				return second
			}
		},
		is: ErrClusterInfoChanged, reads: 2,
	},
	{
		name: "server certificate not from the pinned CA",
		setup: func(t *testing.T, f *fakeAPI, cfg *Config, c discoveryCAs) {
			// cluster-info names another CA, properly signed and pinned,
			// but the server's key is not that CA's.
			info := clusterInfoData(t, f.srv.URL, c.other.pem, map[string]string{testTokenID: testTokenSecret})
			f.clusterInfo = func(int) map[string]string { return info }
			cfg.CACertHashes = []string{CACertHash(c.other.cert)}
		},
		is: ErrUntrustedServer, reads: 1,
	},
	{
		name: "no kubeconfig in cluster-info",
		setup: func(_ *testing.T, f *fakeAPI, _ *Config, _ discoveryCAs) {
			f.clusterInfo = func(int) map[string]string { return map[string]string{"jws-kubeconfig-abcdef": "x..y"} }
		},
		is: ErrNoClusterInfo, reads: 1,
	},
	{
		name: "kubeconfig without CA",
		setup: func(t *testing.T, f *fakeAPI, _ *Config, c discoveryCAs) {
			info := clusterInfoData(t, f.srv.URL, nil, map[string]string{testTokenID: testTokenSecret})
			f.clusterInfo = func(int) map[string]string { return info }
		},
		is: ErrNoClusterInfo, reads: 1,
	},
}

func TestDiscovery(t *testing.T) {
	cas := discoveryCAs{ca: newTestCA(t, "cluster CA"), other: newTestCA(t, "another CA")}
	for _, tt := range discoveryCases {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, cas.ca)
			cfg := testConfig(t, f, cas.ca)
			tt.setup(t, f, &cfg, cas)
			res, err := joinWithFakeClock(t, cfg)
			if tt.is == nil {
				if err != nil {
					t.Fatalf("Join() = %v, want success", err)
				}
				if res.CACertHash != CACertHash(cas.ca.cert) || res.Server != f.srv.URL {
					t.Errorf("Join() = %+v, want CA hash %s and server %s", res, CACertHash(cas.ca.cert), f.srv.URL)
				}
			} else {
				if !errors.Is(err, tt.is) {
					t.Fatalf("Join() = %v, want %v", err, tt.is)
				}
				if !strings.Contains(err.Error(), tt.inErr) || tt.hashInErr && !strings.Contains(err.Error(), CACertHash(cas.ca.cert)) {
					t.Errorf("Join() = %v, want %q (or the CA's hash) in it", err, tt.inErr)
				}
				if strings.Contains(err.Error(), testTokenSecret) {
					t.Errorf("Join() = %v: shows the token secret", err)
				}
				assertNothingWritten(t, cfg.Paths)
			}
			if tt.reads != 0 && f.reads() != tt.reads {
				t.Errorf("cluster-info read %d times, want %d", f.reads(), tt.reads)
			}
		})
	}
}

// TestDiscoveryGivesUp checks that a missing signature is waited for no
// longer than the timeout.
func TestDiscoveryGivesUp(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	f := newFakeAPI(t, ca)
	cfg := testConfig(t, f, ca)
	cfg.Token = "qqqqqq.0123456789abcdef"
	cfg.Timeout, cfg.RetryInterval = 0, 0
	_, err := joinWithFakeClock(t, cfg)
	if !errors.Is(err, ErrNoSignature) || !strings.Contains(err.Error(), "gave up after 5m0s") {
		t.Fatalf("Join() = %v, want %v after 5m0s", err, ErrNoSignature)
	}
	// 250ms, 500ms, 1s, 2s, 4s, then every 5s for 5 minutes.
	if n := f.reads(); n < 60 || n > 62 {
		t.Errorf("cluster-info read %d times in 5 minutes, want about 61", n)
	}
}

// assertNothingWritten fails t if any file of paths exists.
func assertNothingWritten(t *testing.T, p Paths) {
	t.Helper()
	for _, path := range []string{p.BootstrapKubeconfig, p.CACert, p.KubeletConfig, p.InstanceConfig, p.KubeadmFlags} {
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s written, want nothing written", path)
		}
	}
}
