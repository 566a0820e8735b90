package testbed

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// kubeadmConfig is the configuration `kubeadm init phase ...` is given; it
// lives in the control plane's /run/berth.
const kubeadmConfigPath = "/run/berth/kubeadm.yaml"

var kubeadmTemplate = template.Must(template.New("kubeadm").Parse(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: "{{.Token}}"
  description: berth test bed
  ttl: 24h0m0s
  usages: [signing, authentication]
  groups: [system:bootstrappers:kubeadm:default-node-token]
localAPIEndpoint:
  advertiseAddress: {{.AdvertiseAddress}}
  bindPort: 6443
nodeRegistration:
  name: {{.Host}}
  criSocket: unix:///run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: {{.ClusterName}}
kubernetesVersion: {{.KubernetesVersion}}
controlPlaneEndpoint: {{.AdvertiseAddress}}:6443
certificatesDir: /etc/kubernetes/pki
etcd:
  local:
    dataDir: /var/lib/etcd
networking:
  dnsDomain: cluster.local
  podSubnet: {{.PodSubnet}}
  serviceSubnet: {{.ServiceSubnet}}
apiServer:
  certSANs: [{{.AdvertiseAddress}}, {{.Host}}]
  extraArgs:
  - name: audit-policy-file
    value: {{.AuditPolicy}}
  - name: audit-log-path
    value: {{.AuditLog}}
  - name: audit-log-maxsize
    value: "200"
  - name: audit-log-maxbackup
    value: "1"
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
`))

// kubeadmParams fill kubeadmTemplate.
type kubeadmParams struct {
	Token, AdvertiseAddress, Host, ClusterName  string
	KubernetesVersion, PodSubnet, ServiceSubnet string
	// AuditPolicy and AuditLog are set by renderKubeadmConfig.
	AuditPolicy, AuditLog string
}

// renderKubeadmConfig renders the kubeadm configuration of a bed.
func renderKubeadmConfig(p kubeadmParams) (string, error) {
	p.AuditPolicy, p.AuditLog = auditPolicyPath, auditLogPath
	var b strings.Builder
	if err := kubeadmTemplate.Execute(&b, p); err != nil {
		return "", fmt.Errorf("render kubeadm config: %w", err)
	}
	return b.String(), nil
}

// newToken returns a random bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}).
func newToken() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	raw := make([]byte, 22)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("bootstrap token: %w", err)
	}
	for i, b := range raw {
		raw[i] = alphabet[int(b)%len(alphabet)]
	}
	return string(raw[:6]) + "." + string(raw[6:]), nil
}

// controlPlaneComponents are started in this order from the manifests
// kubeadm writes.
var controlPlaneComponents = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// startControlPlane generates PKI, kubeconfigs and static pod manifests with
// kubeadm, runs each manifest's command as a process on the control-plane
// host, waits for /readyz, and then finishes what `kubeadm init` does after
// the control plane is up.
func (tb *Testbed) startControlPlane(ctx context.Context) error {
	cfg, err := renderKubeadmConfig(kubeadmParams{
		Token:             tb.state.Token,
		AdvertiseAddress:  controlPlaneIP.String(),
		Host:              ControlPlaneHost,
		ClusterName:       "berth-" + tb.cfg.Name,
		KubernetesVersion: KubernetesVersion,
		PodSubnet:         PodSubnet,
		ServiceSubnet:     ServiceSubnet,
	})
	if err != nil {
		return err
	}
	if err := tb.writeAuditPolicy(); err != nil {
		return err
	}
	cfgPath, err := tb.HostPath(ControlPlaneHost, kubeadmConfigPath)
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("write kubeadm config: %w", err)
	}
	kubeadm := filepath.Join(tb.cfg.UpstreamDir, "kubeadm")
	for _, phase := range [][]string{{"certs", "all"}, {"kubeconfig", "all"}, {"etcd", "local"}, {"control-plane", "all"}} {
		args := append([]string{kubeadm, "init", "phase"}, phase...)
		if err := tb.Run(ctx, ControlPlaneHost, "kubeadm", append(args, "--config", kubeadmConfigPath)...); err != nil {
			return err
		}
	}
	for _, c := range controlPlaneComponents {
		if err := tb.startComponent(c); err != nil {
			return err
		}
	}
	if err := tb.waitReady(ctx, 3*time.Minute); err != nil {
		return err
	}
	if err := tb.bindClusterRoles(ctx); err != nil {
		return err
	}
	for _, phase := range [][]string{{"upload-config", "all"}, {"bootstrap-token"}, {"addon", "kube-proxy"}} {
		args := append([]string{kubeadm, "init", "phase"}, phase...)
		if err := tb.Run(ctx, ControlPlaneHost, "kubeadm", append(args, "--config", kubeadmConfigPath)...); err != nil {
			return err
		}
	}
	// kubeadm installs kube-proxy on every node; berth replaces it on the
	// nodes it labels. This is the patch the README gives operators.
	if _, err := tb.Kubectl(ctx, "-n", "kube-system", "patch", "daemonset", "kube-proxy", "--type", "merge", "-p", KubeProxyPatch); err != nil {
		return fmt.Errorf("keep kube-proxy off berth nodes: %w", err)
	}
	return nil
}

// KubeProxyPatch keeps kubeadm's kube-proxy DaemonSet off the nodes where
// berth is the service proxy (labelled berthnode.io/service-proxy).
const KubeProxyPatch = `{"spec":{"template":{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":` +
	`{"nodeSelectorTerms":[{"matchExpressions":[{"key":"berthnode.io/service-proxy","operator":"DoesNotExist"}]}]}}}}}}}`

// startComponent starts the control-plane component name with the command
// line of the static pod manifest kubeadm wrote for it.
func (tb *Testbed) startComponent(name string) error {
	path, err := tb.HostPath(ControlPlaneHost, "/etc/kubernetes/manifests/"+name+".yaml")
	if err != nil {
		return err
	}
	args, err := manifestCommand(path)
	if err != nil {
		return err
	}
	args[0] = filepath.Join(tb.cfg.UpstreamDir, name)
	_, err = tb.Start(ControlPlaneHost, name, args...)
	return err
}

// manifestCommand returns the command line of the only container of the
// static pod manifest at path.
func manifestCommand(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(data, &pod); err != nil {
		return nil, fmt.Errorf("decode manifest %s: %w", path, err)
	}
	if len(pod.Spec.Containers) != 1 {
		return nil, fmt.Errorf("manifest %s: want 1 container, have %d", path, len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	args := append(append([]string{}, c.Command...), c.Args...)
	if len(args) == 0 {
		return nil, fmt.Errorf("manifest %s: container %s has no command", path, c.Name)
	}
	return args, nil
}

// waitReady polls the apiserver's /readyz until it answers ok.
func (tb *Testbed) waitReady(ctx context.Context, timeout time.Duration) error {
	client, err := tb.Client(AdminKubeconfig)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		last = fmt.Errorf("readyz: %s: %w", body, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("apiserver not ready after %s (logs in %s): %w", timeout, tb.LogDir(), last)
		case <-time.After(pollInterval(attempt)):
		}
	}
}

// bindClusterRoles creates the bindings a full `kubeadm init` creates and
// its phases do not always: admin.conf's group kubeadm:cluster-admins gets
// cluster-admin, and the apiserver's kubelet client identity may call
// kubelets (logs, exec, port-forward).
func (tb *Testbed) bindClusterRoles(ctx context.Context) error {
	client, err := tb.Client(superAdminKubeconfig)
	if err != nil {
		return err
	}
	bindings := []*rbacv1.ClusterRoleBinding{
		clusterRoleBinding("kubeadm:cluster-admins", "cluster-admin", rbacv1.GroupKind, "kubeadm:cluster-admins"),
		clusterRoleBinding("kube-apiserver-kubelet-client", "system:kubelet-api-admin", rbacv1.UserKind, "kube-apiserver-kubelet-client"),
	}
	for _, b := range bindings {
		_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create clusterrolebinding %s: %w", b.Name, err)
		}
	}
	return nil
}

func clusterRoleBinding(name, role, kind, subject string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: kind, Name: subject}},
	}
}

// Interface is a typed client of the bed's apiserver.
type Interface = kubernetes.Interface
