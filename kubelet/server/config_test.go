package server

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

func validConfig() Config {
	return Config{
		Address:        "0.0.0.0",
		Port:           10250,
		NodeName:       "node1",
		TLS:            ServingCert{Dir: "/var/lib/kubelet/pki", Hostname: "node1", IPs: []net.IP{net.ParseIP("192.168.200.11")}},
		Authentication: Authentication{Webhook: true, CacheTTL: time.Minute},
		Authorization:  Authorization{Mode: ModeWebhook},
		Client:         fake.NewClientset(),
		Clock:          clock.RealClock{},
	}
}

func TestValidate(t *testing.T) {
	tests := map[string]struct {
		mutate func(*Config)
		want   string // substring of the error; empty: valid
	}{
		"valid":              {func(*Config) {}, ""},
		"files only":         {func(c *Config) { c.TLS = ServingCert{CertFile: "/c", KeyFile: "/k"} }, ""},
		"bad address":        {func(c *Config) { c.Address = "localhost" }, "not an IP address"},
		"no port":            {func(c *Config) { c.Port = 0 }, "port 0"},
		"no node":            {func(c *Config) { c.NodeName = "" }, "node name"},
		"no clock":           {func(c *Config) { c.Clock = nil }, "clock"},
		"cert without key":   {func(c *Config) { c.TLS.CertFile = "/c" }, "go together"},
		"relative dir":       {func(c *Config) { c.TLS.Dir = "pki" }, "absolute"},
		"no names":           {func(c *Config) { c.TLS.Hostname, c.TLS.IPs = "", nil }, "hostname or an IP"},
		"old TLS":            {func(c *Config) { c.TLS.MinVersion = tls.VersionTLS11 }, "below TLS 1.2"},
		"webhook, no client": {func(c *Config) { c.Client = nil }, "needs a client"},
		"bootstrap, no client": {func(c *Config) {
			c.Client, c.Authentication.Webhook, c.Authorization.Mode, c.TLS.Bootstrap = nil, false, ModeAlwaysAllow, true
		}, "TLS bootstrap: needs a client"},
		"bad mode":     {func(c *Config) { c.Authorization.Mode = "RBAC" }, "authorization mode"},
		"negative TTL": {func(c *Config) { c.Authorization.CacheAuthorizedTTL = -1 }, "negative"},
		"no client needed": {func(c *Config) {
			c.Client, c.Authentication.Webhook, c.Authorization.Mode = nil, false, ModeAlwaysAllow
		}, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one about %q", err, tt.want)
			}
		})
	}
}

func TestFromKubeletConfiguration(t *testing.T) {
	tests := map[string]struct {
		kc   kubeletv1beta1.KubeletConfiguration
		want Config
	}{
		"upstream defaults": {
			kc: kubeletv1beta1.KubeletConfiguration{},
			want: Config{
				Address: "0.0.0.0", Port: 10250,
				TLS:            ServingCert{MinVersion: tls.VersionTLS12},
				Authentication: Authentication{Webhook: true, CacheTTL: 2 * time.Minute},
				Authorization:  Authorization{Mode: ModeWebhook, CacheAuthorizedTTL: 5 * time.Minute, CacheUnauthorizedTTL: 30 * time.Second},
			},
		},
		"kubeadm's": {
			kc: kubeletv1beta1.KubeletConfiguration{
				Address: "192.168.200.11", Port: 10255,
				TLSCertFile: "/etc/kubelet/tls.crt", TLSPrivateKeyFile: "/etc/kubelet/tls.key",
				TLSMinVersion: "VersionTLS13", ServerTLSBootstrap: true,
				Authentication: kubeletv1beta1.KubeletAuthentication{
					X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: "/etc/kubernetes/pki/ca.crt"},
					Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptr.To(false), CacheTTL: metav1.Duration{Duration: time.Minute}},
					Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptr.To(true)},
				},
				Authorization: kubeletv1beta1.KubeletAuthorization{
					Mode: kubeletv1beta1.KubeletAuthorizationModeAlwaysAllow,
					Webhook: kubeletv1beta1.KubeletWebhookAuthorization{
						CacheAuthorizedTTL: metav1.Duration{Duration: time.Minute}, CacheUnauthorizedTTL: metav1.Duration{Duration: time.Second},
					},
				},
			},
			want: Config{
				Address: "192.168.200.11", Port: 10255,
				TLS: ServingCert{CertFile: "/etc/kubelet/tls.crt", KeyFile: "/etc/kubelet/tls.key", Bootstrap: true, MinVersion: tls.VersionTLS13},
				Authentication: Authentication{
					ClientCAFile: "/etc/kubernetes/pki/ca.crt", Webhook: false, CacheTTL: time.Minute, Anonymous: true,
				},
				Authorization: Authorization{Mode: ModeAlwaysAllow, CacheAuthorizedTTL: time.Minute, CacheUnauthorizedTTL: time.Second},
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := FromKubeletConfiguration(&tt.kc)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b clock.WithTicker) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := FromKubeletConfiguration(&kubeletv1beta1.KubeletConfiguration{TLSMinVersion: "VersionTLS11"}); err == nil {
		t.Error("tlsMinVersion VersionTLS11 accepted")
	}
}
