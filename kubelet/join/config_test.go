package join

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/clock"
)

const testHash = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func validConfig() Config {
	return Config{
		APIEndpoint:  "192.168.200.10:6443",
		Token:        testToken,
		CACertHashes: []string{testHash},
		CRISocket:    "unix:///run/containerd/containerd.sock",
		Paths:        DefaultPaths("/"),
		Clock:        clock.RealClock{},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
		is     error
	}{
		{name: "valid", modify: func(*Config) {}, ok: true},
		{name: "IPv6 endpoint", modify: func(c *Config) { c.APIEndpoint = "[fd00::10]:6443" }, ok: true},
		{name: "DNS endpoint", modify: func(c *Config) { c.APIEndpoint = "cp.example.com:6443" }, ok: true},
		{name: "several hashes", modify: func(c *Config) { c.CACertHashes = append(c.CACertHashes, strings.ToUpper(testHash)) }, ok: true},
		{name: "unsafe without hash", modify: func(c *Config) { c.CACertHashes, c.UnsafeSkipCAVerification = nil, true }, ok: true},
		{name: "node name, IPs, extra args", modify: func(c *Config) {
			c.NodeName, c.Hostname, c.NodeIP = "worker-1.example", "host1", "10.0.0.2,fd00::2"
			c.KubeletExtraArgs = []string{"--cgroup-root=/berth", "max-pods=50"}
		}, ok: true},
		{name: "bare CRI path", modify: func(c *Config) { c.CRISocket = "/run/containerd/containerd.sock" }, ok: true},
		{name: "no hash", modify: func(c *Config) { c.CACertHashes = nil }, is: ErrNoCAVerification},
		{name: "uppercase token", modify: func(c *Config) { c.Token = "ABCDEF.0123456789abcdef" }, is: ErrTokenFormat},
		{name: "short token", modify: func(c *Config) { c.Token = "abcdef.0123" }, is: ErrTokenFormat},
		{name: "no endpoint", modify: func(c *Config) { c.APIEndpoint = "" }},
		{name: "endpoint without port", modify: func(c *Config) { c.APIEndpoint = "192.168.200.10" }},
		{name: "endpoint URL", modify: func(c *Config) { c.APIEndpoint = "https://192.168.200.10:6443" }},
		{name: "endpoint port 0", modify: func(c *Config) { c.APIEndpoint = "192.168.200.10:0" }},
		{name: "md5 hash", modify: func(c *Config) { c.CACertHashes = []string{"md5:ffffffffffffffffffffffffffffffff"} }},
		{name: "short hash", modify: func(c *Config) { c.CACertHashes = []string{"sha256:0123"} }},
		{name: "hash not hex", modify: func(c *Config) { c.CACertHashes = []string{"sha256:" + strings.Repeat("zz", 32)} }},
		{name: "hash without format", modify: func(c *Config) { c.CACertHashes = []string{strings.Repeat("ab", 32)} }},
		{name: "bad node name", modify: func(c *Config) { c.NodeName = "Node_1" }},
		{name: "bad node IP", modify: func(c *Config) { c.NodeIP = "10.0.0.300" }},
		{name: "two IPv4 node IPs", modify: func(c *Config) { c.NodeIP = "10.0.0.2,10.0.0.3" }},
		{name: "no CRI socket", modify: func(c *Config) { c.CRISocket = "" }},
		{name: "tcp CRI socket", modify: func(c *Config) { c.CRISocket = "tcp://10.0.0.1:1234" }},
		{name: "extra arg without value", modify: func(c *Config) { c.KubeletExtraArgs = []string{"--v"} }},
		{name: "node IP twice", modify: func(c *Config) { c.NodeIP, c.KubeletExtraArgs = "10.0.0.2", []string{"node-ip=10.0.0.3"} }},
		{name: "relative path", modify: func(c *Config) { c.Paths.KubeletConfig = "config.yaml" }},
		{name: "no clock", modify: func(c *Config) { c.Clock = nil }},
		{name: "negative timeout", modify: func(c *Config) { c.Timeout = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(&c)
			err := c.Validate()
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Validate() = %v, want success", err)
			case !tt.ok && err == nil:
				t.Fatal("Validate() succeeded, want an error")
			case tt.is != nil && !errors.Is(err, tt.is):
				t.Fatalf("Validate() = %v, want %v", err, tt.is)
			}
			if err != nil && strings.Contains(err.Error(), "0123456789") {
				t.Errorf("Validate() = %v: shows the token secret", err)
			}
		})
	}
}

func TestParsePins(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	got, err := parsePins([]string{"sha256:" + hex64, "SHA256:" + strings.ToUpper(hex64)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pinSet{hex64: true}, got); diff != "" {
		t.Errorf("parsePins() (-want +got):\n%s", diff)
	}
}

func TestCACertHash(t *testing.T) {
	ca := newTestCA(t, "ca")
	sum := sha256.Sum256(ca.cert.RawSubjectPublicKeyInfo)
	if got, want := CACertHash(ca.cert), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("CACertHash() = %s, want %s", got, want)
	}
	pins, err := parsePins([]string{CACertHash(ca.cert)})
	if err != nil || !pins.matches(ca.cert) {
		t.Errorf("the CA's own hash does not pin it: %v", err)
	}
	if pins.matches(newTestCA(t, "other").cert) {
		t.Error("another CA matches the pin")
	}
}

func TestExtraArgs(t *testing.T) {
	c := validConfig()
	c.NodeIP = "10.0.0.2"
	c.KubeletExtraArgs = []string{"--cgroup-root=/berth/node1", "node-labels=a=b,c=d", "v=2"}
	got, err := c.extraArgs()
	if err != nil {
		t.Fatal(err)
	}
	want := []flagArg{{"node-ip", "10.0.0.2"}, {"cgroup-root", "/berth/node1"}, {"node-labels", "a=b,c=d"}, {"v", "2"}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(flagArg{})); diff != "" {
		t.Errorf("extraArgs() (-want +got):\n%s", diff)
	}
}
