package kubeletapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berthnode/berth/test/e2e/cluster"
	"github.com/berthnode/berth/test/testbed"
)

// TestKubeletAPIRefusesStrangers: straight to :10250, a request without
// credentials gets 401 and one with a service account token that may not
// use the node's API gets 403, on every endpoint; the apiserver's client
// certificate and a token allowed nodes/proxy get through.
func TestKubeletAPIRefusesStrangers(t *testing.T) {
	client, ns := setUp(t)
	runPod(t, client, ns, busybox("target", "exec sleep 1000000"))
	endpoints := []struct{ method, path string }{
		{"GET", "/healthz"},
		{"GET", "/pods"},
		{"GET", "/runningpods/"},
		{"GET", "/configz"},
		{"GET", "/metrics"},
		{"GET", "/metrics/resource"},
		{"GET", "/stats/summary"},
		{"GET", "/containerLogs/" + ns + "/target/c"},
		{"POST", "/exec/" + ns + "/target/c?command=id&output=1"},
		{"POST", "/attach/" + ns + "/target/c?output=1"},
		{"POST", "/portForward/" + ns + "/target"},
	}
	base := "https://" + net.JoinHostPort(bed.Nodes()[0].IP, "10250")
	anonymous := kubeletClient(t, nil)
	stranger := serviceAccountToken(t, client, ns, "stranger")
	for _, e := range endpoints {
		if code, body := call(t, anonymous, e.method, base+e.path, ""); code != http.StatusUnauthorized || strings.TrimSpace(body) != "Unauthorized" {
			t.Errorf("%s %s without credentials: %d %q, want 401 Unauthorized", e.method, e.path, code, head(body, 100))
		}
		if code, body := call(t, anonymous, e.method, base+e.path, stranger); code != http.StatusForbidden {
			t.Errorf("%s %s with a token without rights: %d %q, want 403", e.method, e.path, code, head(body, 100))
		}
	}

	// The same server lets the right callers in.
	apiserver := kubeletClient(t, apiserverClientCert(t))
	if code, body := call(t, apiserver, "GET", base+"/healthz", ""); code != http.StatusOK || body != "ok" {
		t.Errorf("/healthz with the apiserver's client certificate: %d %q, want 200 ok", code, body)
	}
	if code, body := call(t, apiserver, "GET", base+"/pods", ""); code != http.StatusOK || !strings.Contains(body, `"name":"target"`) {
		t.Errorf("/pods with the apiserver's client certificate: %d %q, want 200 listing target", code, head(body, 200))
	}
	prober := serviceAccountToken(t, client, ns, "prober")
	allowNodeProxy(t, client, ns, "prober")
	// RBAC takes a moment to see the binding.
	cluster.Poll(t, time.Minute, "/runningpods/ with a token allowed nodes/proxy", func() (bool, string) {
		code, body := call(t, anonymous, "GET", base+"/runningpods/", prober)
		return code == http.StatusOK && strings.Contains(body, `"name":"target"`), fmt.Sprintf("%d %q", code, head(body, 200))
	})
}

// kubeletClient is an HTTPS client that reaches the nodes' :10250 from the
// control-plane host, as the apiserver does, presenting cert if not nil.
// The nodes' serving certificates are self-signed: the apiserver of a
// kubeadm cluster does not verify them either.
func kubeletClient(t *testing.T, cert *tls.Certificate) *http.Client {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // self-signed kubelet certificates, as the apiserver sees them
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return bed.DialContext(ctx, testbed.ControlPlaneHost, network, addr)
		},
	}}
}

// call makes one request, with a bearer token if not empty.
func call(t *testing.T, c *http.Client, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

// serviceAccountToken creates a service account and returns a token of it.
func serviceAccountToken(t *testing.T, client kubernetes.Interface, ns, name string) string {
	t.Helper()
	ctx := t.Context()
	if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// allowNodeProxy lets the service account get nodes/proxy.
func allowNodeProxy(t *testing.T, client kubernetes.Interface, ns, sa string) {
	t.Helper()
	ctx := t.Context()
	name := ns + "-" + sa
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"},
	}}}
	if _, err := client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = client.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// apiserverClientCert is the certificate the apiserver uses towards
// kubelets (kubeadm's apiserver-kubelet-client).
func apiserverClientCert(t *testing.T) *tls.Certificate {
	t.Helper()
	read := func(name string) []byte {
		path, err := bed.HostPath(testbed.ControlPlaneHost, "/etc/kubernetes/pki/"+name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	cert, err := tls.X509KeyPair(read("apiserver-kubelet-client.crt"), read("apiserver-kubelet-client.key"))
	if err != nil {
		t.Fatal(fmt.Errorf("apiserver-kubelet-client: %w", err))
	}
	return &cert
}
