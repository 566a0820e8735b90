package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/berthnode/berth/kubelet/podnet"
	"github.com/berthnode/berth/test/testbed"
)

// kubeletLoop runs the upstream kubelet on a node as kubeadm's systemd unit
// does: with the flags of its drop-in (10-kubeadm.conf) and of the
// kubeadm-flags.env that `kubeadm join` writes, restarted when it exits.
// Before the join has written the kubelet's configuration it waits, as the
// unit restarts a kubelet that exits for want of it.
const kubeletLoop = `while :; do
	if [ -f /var/lib/kubelet/config.yaml ]; then
		KUBELET_KUBEADM_ARGS=
		[ -f /var/lib/kubelet/kubeadm-flags.env ] && . /var/lib/kubelet/kubeadm-flags.env
		/usr/local/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
			--kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml $KUBELET_KUBEADM_ARGS
	fi
	sleep 2
done`

// kubeletSysctls are the kernel settings the upstream kubelet sets at start
// (setupKernelTunables). Unlike the network ones they are not per
// namespace: on a bed they would change the machine's kernel. The node's
// mount namespace gets a file in place of each, holding the current value.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// shieldSysctls is the script that puts a file over each of kubeletSysctls
// in the node's mount namespace.
func shieldSysctls() string {
	s := "set -e; mkdir -p /run/berth/sysctl\n"
	for _, k := range kubeletSysctls {
		f := "/run/berth/sysctl/" + filepath.Base(filepath.Dir(k)) + "." + filepath.Base(k)
		s += fmt.Sprintf("cat /proc/sys/%[1]s > %[2]s; mount --bind %[2]s /proc/sys/%[1]s\n", k, f)
	}
	return s
}

// KubeletPath and KubeProxyPath are where the upstream programs run from
// on a node (the first argument of their processes).
const (
	KubeletPath   = "/usr/local/bin/kubelet"
	KubeProxyPath = "/usr/local/bin/kube-proxy"
)

// proxyConfigPath is kube-proxy's configuration on a node, and
// proxyKubeconfigPath its credentials (the kube-proxy ServiceAccount's, as
// kubeadm's DaemonSet runs it).
const (
	proxyConfigPath     = "/etc/kubernetes/kube-proxy.yaml"
	proxyKubeconfigPath = "/etc/kubernetes/kube-proxy.conf"
)

// Join makes every node of tb an upstream node (see JoinNode), with the
// kubelet and kube-proxy binaries in binDir.
func Join(ctx context.Context, tb *testbed.Testbed, binDir string, out io.Writer) error {
	proxyConfig, err := Prepare(ctx, tb)
	if err != nil {
		return err
	}
	for _, n := range tb.Nodes() {
		if err := JoinNode(ctx, tb, n, binDir, proxyConfig, out); err != nil {
			return err
		}
	}
	return nil
}

// ProxyConfig is the KubeProxyConfiguration kubeadm uploaded, as every
// upstream node's kube-proxy runs it (see Prepare).
type ProxyConfig map[string]any

// Prepare readies the cluster for upstream nodes, once: kubeadm's
// kube-proxy DaemonSet is deleted (its image is not on the nodes, and a
// node process is what the bed compares) and the configuration it would
// have run with is returned.
func Prepare(ctx context.Context, tb *testbed.Testbed) (ProxyConfig, error) {
	client, err := tb.Client(testbed.AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	err = client.AppsV1().DaemonSets("kube-system").Delete(ctx, "kube-proxy", metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("delete kube-proxy DaemonSet: %w", err)
	}
	return kubeProxyConfig(ctx, client)
}

// JoinNode makes n an upstream node: kubelet installed and run as
// kubeadm's unit runs it, `kubeadm join`, a bridge CNI config (the one
// berth writes) for the node's pod CIDR, and kube-proxy run as a process
// with proxyConfig (see Prepare).
func JoinNode(ctx context.Context, tb *testbed.Testbed, n testbed.Node, binDir string, proxyConfig ProxyConfig, out io.Writer) error {
	client, err := tb.Client(testbed.AdminKubeconfig)
	if err != nil {
		return err
	}
	if err := installBinaries(tb, n.Name, binDir, "kubelet", "kube-proxy"); err != nil {
		return err
	}
	if err := createCgroupRoot(n.CgroupParent); err != nil {
		return fmt.Errorf("cgroup root of %s: %w", n.Name, err)
	}
	if _, err := tb.Output(ctx, n.Name, "/bin/sh", "-c", shieldSysctls()); err != nil {
		return fmt.Errorf("shield kernel settings on %s: %w", n.Name, err)
	}
	// What berth's proxy sets too: bridged pod traffic goes through
	// iptables (per network namespace).
	if _, err := tb.Output(ctx, n.Name, "sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1"); err != nil {
		return err
	}
	if _, err := tb.Start(n.Name, "kubelet", "/bin/sh", "-c", kubeletLoop); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: upstream kubelet installed; kubeadm join %s\n", n.Name, tb.ControlPlaneEndpoint())
	if err := tb.Join(ctx, n.Name); err != nil {
		return fmt.Errorf("join %s: %w", n.Name, err)
	}
	if err := writeNodeFile(tb, n.Name, proxyConfigPath, withHostname(proxyConfig, n.Name)); err != nil {
		return err
	}
	if err := writeProxyKubeconfig(ctx, tb, client, n.Name); err != nil {
		return err
	}
	if _, err := tb.Start(n.Name, "kube-proxy", KubeProxyPath, "--config="+proxyConfigPath); err != nil {
		return err
	}
	return writeCNIConfig(ctx, tb, client, n.Name)
}

// installBinaries copies the named programs from dir to the node's
// /usr/local/bin.
func installBinaries(tb *testbed.Testbed, node, dir string, names ...string) error {
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("install %s on %s: %w", name, node, err)
		}
		if err := writeNodeFile(tb, node, "/usr/local/bin/"+name, data); err != nil {
			return err
		}
		dst, _ := tb.HostPath(node, "/usr/local/bin/"+name) // written just now
		if err := os.Chmod(dst, 0o755); err != nil {
			return fmt.Errorf("install %s on %s: %w", name, node, err)
		}
	}
	return nil
}

// writeNodeFile writes data to path (a path the bed shares) on node.
func writeNodeFile(tb *testbed.Testbed, node, path string, data []byte) error {
	dst, err := tb.HostPath(node, path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("write %s on %s: %w", path, node, err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		return fmt.Errorf("write %s on %s: %w", path, node, err)
	}
	return nil
}

// kubeProxyConfig returns the KubeProxyConfiguration kubeadm uploaded
// (kube-system/kube-proxy), pointed at proxyKubeconfigPath, in iptables mode,
// and without the conntrack settings that are not per network namespace
// (a bed must not change the machine's conntrack table size).
func kubeProxyConfig(ctx context.Context, client testbed.Interface) (ProxyConfig, error) {
	cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read kube-proxy ConfigMap: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.conf"]), &cfg); err != nil {
		return nil, fmt.Errorf("decode kube-proxy configuration: %w", err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("kube-proxy ConfigMap has no config.conf")
	}
	cfg["mode"] = "iptables"
	cfg["clientConnection"] = map[string]any{"kubeconfig": proxyKubeconfigPath}
	cfg["conntrack"] = map[string]any{"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"}
	return cfg, nil
}

// withHostname renders cfg with the node's name as hostnameOverride.
func withHostname(cfg ProxyConfig, node string) []byte {
	c := map[string]any{}
	for k, v := range cfg {
		c[k] = v
	}
	c["hostnameOverride"] = node
	data, _ := yaml.Marshal(c) // plain maps of decoded YAML
	return data
}

// writeProxyKubeconfig writes kube-proxy's kubeconfig on node with a token
// of the kube-proxy ServiceAccount, which kubeadm binds to
// system:node-proxier.
func writeProxyKubeconfig(ctx context.Context, tb *testbed.Testbed, client testbed.Interface, node string) error {
	day := int64(24 * 60 * 60)
	tr, err := client.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "kube-proxy",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &day}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for kube-proxy: %w", err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["default"] = &clientcmdapi.Cluster{Server: "https://" + tb.ControlPlaneEndpoint(), CertificateAuthority: "/etc/kubernetes/pki/ca.crt"}
	cfg.AuthInfos["kube-proxy"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "default", AuthInfo: "kube-proxy"}
	cfg.CurrentContext = "default"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("kube-proxy kubeconfig: %w", err)
	}
	return writeNodeFile(tb, node, proxyKubeconfigPath, data)
}

// writeCNIConfig writes the bridge CNI config for the node's pod CIDR once
// the Node has one: what a network add-on's agent does on each node.
func writeCNIConfig(ctx context.Context, tb *testbed.Testbed, client testbed.Interface, node string) error {
	cidrs, err := waitPodCIDRs(ctx, client, node)
	if err != nil {
		return err
	}
	data, err := podnet.ConfigList(cidrs)
	if err != nil {
		return fmt.Errorf("CNI config for %s: %w", node, err)
	}
	return writeNodeFile(tb, node, filepath.Join(podnet.DefaultConfDir, podnet.DefaultConfName), data)
}

// cgroupFS is where the cgroup hierarchies are mounted.
const cgroupFS = "/sys/fs/cgroup"

// createCgroupRoot creates the node's cgroup root (its --cgroup-root) in
// every cgroup v1 hierarchy: the upstream kubelet refuses to start unless it
// exists in each, where berth creates what it needs. A new cpuset cgroup
// starts with no CPUs and memory nodes; each level gets its parent's. The
// bed's Down removes the folders.
func createCgroupRoot(root string) error {
	if _, err := os.Stat(filepath.Join(cgroupFS, "cgroup.controllers")); err == nil {
		return nil // cgroup v2: one hierarchy, the bed created the node's cgroup
	}
	hierarchies, err := os.ReadDir(cgroupFS)
	if err != nil {
		return fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	for _, h := range hierarchies {
		if !h.IsDir() || h.Name() == "unified" {
			continue
		}
		dir := filepath.Join(cgroupFS, h.Name())
		for _, part := range strings.Split(strings.Trim(root, "/"), "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if h.Name() == "cpuset" {
				if err := inheritCpuset(parent, dir); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// inheritCpuset gives the cpuset cgroup dir its parent's CPUs and memory
// nodes when it has none.
func inheritCpuset(parent, dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		val, err := os.ReadFile(filepath.Join(parent, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), val, 0o644); err != nil {
			return fmt.Errorf("%s of %s: %w", f, dir, err)
		}
	}
	return nil
}

// waitPodCIDRs waits until the Node has pod CIDRs and returns them.
func waitPodCIDRs(ctx context.Context, client testbed.Interface, node string) ([]netip.Prefix, error) {
	var cidrs []netip.Prefix
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil || len(n.Spec.PodCIDRs) == 0 {
			return false, nil
		}
		cidrs = cidrs[:0]
		for _, s := range n.Spec.PodCIDRs {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return false, fmt.Errorf("node %s: podCIDR %q: %w", node, s, err)
			}
			cidrs = append(cidrs, p)
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for the pod CIDR of %s: %w", node, err)
	}
	return cidrs, nil
}
