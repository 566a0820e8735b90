package testbed

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Kubeconfigs kubeadm writes on the control-plane host.
const (
	// AdminKubeconfig is the cluster admin's kubeconfig (group
	// kubeadm:cluster-admins).
	AdminKubeconfig = "/etc/kubernetes/admin.conf"
	// superAdminKubeconfig is in system:masters; only used to create the
	// binding that gives AdminKubeconfig its rights.
	superAdminKubeconfig = "/etc/kubernetes/super-admin.conf"
)

// RESTConfig returns a client configuration from the kubeconfig at path on
// the control-plane host, that connects from inside the LAN namespace (as an
// operator's machine on the LAN would).
func (tb *Testbed) RESTConfig(path string) (*rest.Config, error) {
	outside, err := tb.HostPath(ControlPlaneHost, path)
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", outside)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", outside, err)
	}
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return tb.DialContext(ctx, lanHost, network, addr)
	}
	cfg.UserAgent = "berth-testbed"
	return cfg, nil
}

// Client returns a typed client for the kubeconfig at path on the
// control-plane host (see RESTConfig).
func (tb *Testbed) Client(path string) (kubernetes.Interface, error) {
	cfg, err := tb.RESTConfig(path)
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", path, err)
	}
	return c, nil
}

// UnthrottledAdminClient returns the cluster admin's client (see
// RESTConfig) without client-go's default limit of 5 requests a second,
// which would make a benchmark time its own client.
func (tb *Testbed) UnthrottledAdminClient() (kubernetes.Interface, error) {
	cfg, err := tb.RESTConfig(AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	return c, nil
}

// Kubectl runs the upstream kubectl on the control-plane host with the
// admin kubeconfig, and returns its stdout.
func (tb *Testbed) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	kubectl := filepath.Join(tb.cfg.UpstreamDir, "kubectl")
	return tb.Output(ctx, ControlPlaneHost, append([]string{kubectl, "--kubeconfig", AdminKubeconfig}, args...)...)
}

// KubectlCommand returns the command that runs the bed's kubectl as the
// cluster admin on the control-plane host, to start and stream from.
func (tb *Testbed) KubectlCommand(ctx context.Context, args ...string) *exec.Cmd {
	kubectl := filepath.Join(tb.cfg.UpstreamDir, "kubectl")
	cmd := tb.Command(ctx, ControlPlaneHost, append([]string{kubectl, "--kubeconfig", AdminKubeconfig}, args...)...)
	cmd.Env = hostEnv()
	return cmd
}

// UpstreamBinary returns the path of one of the upstream binaries (kubectl,
// kubeadm, ...); it can be run on any host.
func (tb *Testbed) UpstreamBinary(name string) string {
	return filepath.Join(tb.cfg.UpstreamDir, name)
}

// ImageArchives returns the image tarballs the bed imports into its nodes'
// containerd (pause, busybox, echo), for machines a test runs itself.
func (tb *Testbed) ImageArchives() []string {
	return append([]string(nil), tb.cfg.Images...)
}
